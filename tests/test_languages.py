"""The page in the visitor's language: Chromium with a zh-HK, zh-TW, zh-CN or en-US locale.

Chromium's `locale` sets navigator.language and the Accept-Language it sends (the tag
alone); each context here sends the fuller header a browser of that locale sends.
Screenshots land in test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from bench.processes import free_port
from runapi_ui.page.server import PlaygroundApp
from runapi_ui.runapi.catalog import MODELS
from runapi_ui.runs.settings import Settings
from runapi_ui.translations import ENGLISH, SIMPLIFIED, TRADITIONAL, language_for, text
from tests.conftest import launched_app, settle, shot
from tests.test_accessibility import audit
from tests.test_simulator import HONG_KONG_PROMPT

# The same words in one script and not the other (图/圖 picture, 词/詞 word, 设/設 set,
# 历/歷 history, 录/錄 record, 选/選 choose, 载/載 load): a page in one script shows none
# of the other's. The switch's own names (繁體中文, 简体中文) use none of them.
SIMPLIFIED_ONLY = "图词设历录选载"
TRADITIONAL_ONLY = "圖詞設歷錄選載"

# Locale, the Accept-Language its browser sends, and the language the page speaks.
LOCALES = [
    ("zh-HK", "zh-HK,zh;q=0.9,en;q=0.8", TRADITIONAL),
    ("zh-TW", "zh-TW,zh;q=0.9,en-US;q=0.8,en;q=0.7", TRADITIONAL),
    ("zh-CN", "zh-CN,zh;q=0.9", SIMPLIFIED),
    ("en-US", "en-US,en;q=0.9", ENGLISH),
]
HEADERS = {locale: header for locale, header, _ in LOCALES}
IMAGES_LOADED = """() => [...document.querySelectorAll("#results img")]
  .every((image) => image.complete && image.naturalWidth > 0)"""
WAIT = 20000  # ms: a relabel or a run on a busy machine; a wait, not a timed assertion


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[PlaygroundApp, str]]:
    """The app in demo mode, its placeholders quick to come."""
    settings = Settings(
        demo=True,
        port=free_port(),
        simulator_time_scale=0.05,
        data_dir=tmp_path_factory.mktemp("languages"),
    )
    with launched_app(settings) as app:
        yield app.app, app.url


def open_page(browser: Browser, url: str, locale: str, width: int = 1366) -> Page:
    context = browser.new_context(
        locale=locale,
        extra_http_headers={"Accept-Language": HEADERS[locale]},
        viewport={"width": width, "height": 900},
    )
    page = context.new_page()
    page.goto(url)
    settle(page)
    return page


def expect_language(page: Page, language: str) -> None:
    """The page's own words are `language`'s: buttons, labels, choices, the cost line."""
    expect(page.locator("#generate")).to_have_text(text(language, "form.generate"), timeout=WAIT)
    expect(page.get_by_label(text(language, "form.prompt.label"), exact=True)).to_be_visible()
    expect(page.locator("#cost")).to_have_text(text(language, "cost.demo"), timeout=WAIT)
    fast = MODELS["imagen-4-fast"]
    expect(page.get_by_label(fast.label_at(fast.price_usd, language), exact=True)).to_be_visible(
        timeout=WAIT
    )
    expect(page.locator("html")).to_have_attribute("lang", language)
    switch = page.get_by_role("radiogroup", name=text(language, "language.label"))
    expect(switch).to_be_visible()


@pytest.mark.parametrize(("locale", "header", "language"), LOCALES)
def test_the_page_speaks_the_browsers_language(
    browser: Browser, served, locale: str, header: str, language: str
) -> None:
    page = open_page(browser, served[1], locale)
    expect_language(page, language)
    expect(page.get_by_role("radio", name="繁體中文")).to_be_checked(
        checked=language == TRADITIONAL
    )
    shown = page.locator("body").inner_text()
    if language == TRADITIONAL:
        assert "生成圖片" in shown and "提示詞" in shown and "示範模式" in shown
        assert not set(SIMPLIFIED_ONLY) & set(shown), set(SIMPLIFIED_ONLY) & set(shown)
    elif language == SIMPLIFIED:
        assert "生成图片" in shown and "提示词" in shown and "演示模式" in shown
        assert not set(TRADITIONAL_ONLY) & set(shown), set(TRADITIONAL_ONLY) & set(shown)
    else:
        assert "Generate" in shown and "Demo mode." in shown
        assert not set(SIMPLIFIED_ONLY + TRADITIONAL_ONLY + "示演") & set(shown)
    page.context.close()


def test_the_switch_changes_the_page_live_and_the_browser_keeps_it(
    browser: Browser, served
) -> None:
    page = open_page(browser, served[1], "zh-HK")
    expect_language(page, TRADITIONAL)
    page.get_by_role("radio", name="简体中文").check()
    expect_language(page, SIMPLIFIED)
    # The history's filters: labels translated, values as they were.
    status = page.get_by_label(text(SIMPLIFIED, "history_form.status"), exact=True)
    expect(status).to_have_value(text(SIMPLIFIED, "history_form.any_status"))
    page.reload()  # the browser still says zh-HK; the kept choice wins
    expect_language(page, SIMPLIFIED)
    page.get_by_role("radio", name="English").check()
    expect_language(page, ENGLISH)
    expect(page.get_by_label("Prompt", exact=True)).to_be_visible()
    expect(page.get_by_label(MODELS["imagen-4"].choice_label, exact=True)).to_be_checked()
    page.reload()
    expect(page.get_by_role("radio", name="English")).to_be_checked(timeout=WAIT)
    expect_language(page, ENGLISH)
    page.context.close()


@pytest.mark.parametrize("width", [1366, 390])
def test_a_chinese_page_still_selects_models_and_runs(browser: Browser, served, width: int) -> None:
    page = open_page(browser, served[1], "zh-HK", width)
    expect_language(page, TRADITIONAL)
    shot(page, f"languages-zh-HK-{width}")
    fast = MODELS["imagen-4-fast"]
    choice = page.get_by_label(fast.label_at(fast.price_usd, TRADITIONAL), exact=True)
    choice.check()
    expect(choice).to_be_checked()
    page.get_by_label("提示詞", exact=True).fill(HONG_KONG_PROMPT)
    page.get_by_role("button", name="生成圖片").click()
    expect(page.locator("#results img")).to_have_count(1, timeout=WAIT)
    page.wait_for_function(IMAGES_LOADED, timeout=WAIT)
    expect(page.locator("#history .thumbnail-item").first).to_contain_text(HONG_KONG_PROMPT)
    assert "imagen-4-fast" in page.locator("#results").inner_text()
    shot(page, f"languages-zh-HK-run-{width}")
    # The history's filters by their Chinese labels: the values behind them still filter.
    history = page.locator("#history .thumbnail-item")
    choose(page, "狀態", "失敗")
    expect(history).to_have_count(0, timeout=WAIT)
    choose(page, "狀態", "已完成")
    expect(history).to_have_count(1, timeout=WAIT)
    page.context.close()


def choose(page: Page, dropdown: str, option: str) -> None:
    page.get_by_label(dropdown, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_remix_mode_by_its_chinese_name_shows_its_own_settings(browser: Browser, served) -> None:
    page = open_page(browser, served[1], "zh-CN")
    expect_language(page, SIMPLIFIED)
    page.get_by_role("radio", name="重混", exact=True).check()
    expect(page.locator("#remix")).to_have_text("重混")
    expect(page.locator("#generate")).to_be_hidden()
    expect(page.get_by_text("源图片（1 到 8 张）")).to_be_visible()
    expect(page.get_by_text("输出分辨率", exact=True)).to_be_visible()
    expect(page.locator("#cost")).to_have_text("演示模式：不收费。")
    page.context.close()


@pytest.mark.parametrize("locale", ["zh-HK", "zh-CN"])
def test_axe_finds_nothing_serious_on_a_chinese_page(browser: Browser, served, locale: str) -> None:
    """The translated page keeps the English one's audit: names, contrast, a valid lang."""
    page = open_page(browser, served[1], locale)
    expect_language(page, language_for(HEADERS[locale]))
    found = audit(page, f"{locale} fresh")
    page.context.close()
    assert found == [], "\n".join(found)
