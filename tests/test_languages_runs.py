"""What the page writes while it is used, in the visitor's language (issue 24).

A run's phases, its summary, the history's captions and dates, the toasts: in
Traditional Chinese for a Hong Kong browser, Simplified for a mainland one, English for
an en-US one, while scripts and agents keep errors.py's English. Real Chromium on the
demo simulator; errors come from a real simulator over loopback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from bench.processes import free_port
from runapi_ui.page.page_errors import page_message
from runapi_ui.page.server import PlaygroundApp
from runapi_ui.page.tabs import TabLimits
from runapi_ui.runapi.client import GenerationRequest
from runapi_ui.runapi.errors import AuthenticationError, TaskFailedError
from runapi_ui.runapi.simulator import SimulatorConfig, SimulatorServer
from runapi_ui.runapi.sources import check_source, check_sources
from runapi_ui.runs.playground import checked_count, pick_seed
from runapi_ui.runs.quota import QuotaExceeded
from runapi_ui.runs.settings import Settings
from runapi_ui.storage.exports import build_zip
from runapi_ui.translations import ENGLISH, SIMPLIFIED, TRADITIONAL
from tests.conftest import WAIT_MS, launched_app, shot

REQUEST = GenerationRequest(prompt="a lighthouse", model="imagen-4-fast")
# Browsers by the languages they send: Playwright's locale, and the header the server reads.
HONG_KONG = {"locale": "zh-HK", "extra_http_headers": {"Accept-Language": "zh-HK,zh;q=0.9"}}
MAINLAND = {"locale": "zh-CN", "extra_http_headers": {"Accept-Language": "zh-CN,zh;q=0.9"}}
AMERICAN = {"locale": "en-US", "extra_http_headers": {"Accept-Language": "en-US,en;q=0.9"}}
CHINESE_DATE = re.compile(r"\d{1,2}月\d{1,2}日 \d\d:\d\d UTC")


# --- errors as the page says them (no browser) ------------------------------------------


async def test_a_refused_key_is_said_in_each_language_with_runapis_ids(
    make_simulator, make_client
) -> None:
    server = make_simulator(api_keys=frozenset({"sk-the-right-one"}))
    with pytest.raises(AuthenticationError) as caught:
        await make_client(server, api_key="sk-wrong-one-4242").generate(REQUEST)
    error = caught.value
    assert error.client_request_id
    assert page_message(ENGLISH, error) == error.message, "English: errors.py's own words"
    traditional = page_message(TRADITIONAL, error)
    simplified = page_message(SIMPLIFIED, error)
    assert traditional.startswith("RunAPI 不接受這個 API 金鑰（HTTP 401")
    assert simplified.startswith("RunAPI 不接受这个 API 密钥（HTTP 401")
    for said in (traditional, simplified):
        assert error.client_request_id in said, "the id to quote to RunAPI's support"
        assert error.detail and error.detail in said, "RunAPI's own words, verbatim"
        assert "sk-wrong-one-4242" not in said


async def test_a_failed_task_keeps_runapis_reason_verbatim(make_simulator, make_client) -> None:
    server = make_simulator(faults="task_fail")
    with pytest.raises(TaskFailedError) as caught:
        await make_client(server).generate(REQUEST)
    error = caught.value
    said = page_message(TRADITIONAL, error)
    assert said.startswith("RunAPI 表示任務失敗：")
    assert error.reason in said
    assert page_message(SIMPLIFIED, error).startswith("RunAPI 表示任务失败：")


def refusal(act: Callable[[], object]) -> Exception:
    """The error `act` raises."""
    with pytest.raises(Exception) as caught:
        act()
    return caught.value


@pytest.mark.parametrize(
    ("act", "traditional", "simplified"),
    [
        (lambda: pick_seed("forty-two"), "種子必須是 0 至 2147483647 的整數", "种子必须是 0 到"),
        (lambda: checked_count(9), "圖片數量必須是 1 至 4 的整數", "图片数量必须是 1 到 4"),
        (lambda: TabLimits(images=8).admit([], 9), "這個分頁已有 0 張圖片", "这个标签页已有 0 张"),
        (lambda: build_zip([], Path("."), title="x"), "暫時沒有可下載的內容", "暂时没有可下载"),
        (lambda: check_source(b"GIF89a", "貓.gif"), "貓.gif 不是可讀取的圖片", "貓.gif 不是可读取"),
        (
            lambda: check_sources([]),
            "重混需要 1 至 8 張來源圖片，現在有 0 張",
            "重混需要 1 到 8 张",
        ),
    ],
    ids=["seed", "count", "tab-cap", "empty-zip", "not-an-image", "no-sources"],
)
def test_the_playgrounds_own_refusals_are_said_in_each_script(
    act: Callable[[], object], traditional: str, simplified: str
) -> None:
    error = refusal(act)
    assert page_message(ENGLISH, error) == str(error), "English: the words scripts get"
    assert page_message(TRADITIONAL, error).startswith(traditional)
    assert page_message(SIMPLIFIED, error).startswith(simplified)


def test_a_quota_says_when_in_the_languages_date() -> None:
    error = QuotaExceeded("You have used this server's 2 images an hour.", 1_765_000_000)
    assert "12月6日 05:46 UTC" in page_message(TRADITIONAL, error)
    assert page_message(SIMPLIFIED, error).startswith("本服务器在其 RunAPI 密钥上给的额度")


# --- the page in Chromium ---------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[PlaygroundApp, str]]:
    """The app in demo mode (runs of a few seconds); a simulator stands in for RunAPI's
    prices, so nothing leaves this machine. (Chromium is conftest's.)"""
    config = SimulatorConfig(time_scale=0.1, api_keys=frozenset({"sk-the-right-one"}))
    with SimulatorServer(config) as runapi:
        settings = Settings(
            base_url=runapi.url,
            port=free_port(),
            data_dir=tmp_path_factory.mktemp("languages"),
        )
        with launched_app(settings) as served:
            yield served.app, served.url


def open_page(browser: Browser, url: str, languages: dict, picked: str) -> Page:
    """A fresh browser with these languages, once the page has picked `picked` for them."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, **languages)
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#language").get_by_label(picked, exact=True)).to_be_checked(
        timeout=WAIT_MS
    )
    return page


def prompt_box(page: Page):
    """The prompt: the form's first text area (its label is translated)."""
    return page.locator("#form textarea").first


@pytest.mark.browser
def test_a_hong_kong_browser_follows_a_run_in_traditional_chinese(browser: Browser, served):
    page = open_page(browser, served[1], HONG_KONG, "繁體中文")
    prompt_box(page).fill("維多利亞港的夜景，霓虹燈倒映在海面")
    page.locator("#generate").click()

    feed = page.locator("#runs-feed")
    expect(feed).to_contain_text("1 次生成進行中。", timeout=WAIT_MS)
    expect(feed.locator(".run-card-shown")).to_have_text("顯示中")
    expect(feed.locator(".run-card-meta")).to_contain_text("1 張中已完成", timeout=WAIT_MS)
    summary = page.locator("#summary")
    expect(summary).to_contain_text("1 張中完成 1 張", timeout=WAIT_MS)
    expect(feed).to_contain_text("最近的生成。")
    expect(feed.locator(".run-card-meta")).to_contain_text("完成 · ")
    summary_text = summary.inner_text()
    for words in ("imagen-4 · 1:1 · 種子 ", " 秒 · 免費（示範）"):
        assert words in summary_text
    assert "免费" not in summary_text and "images" not in summary_text

    caption = page.locator("#history .caption-label").first
    expect(caption).to_contain_text("免費（示範）", timeout=WAIT_MS)
    assert CHINESE_DATE.search(caption.inner_text()), "the date as Chinese writes it"
    assert "維多利亞港" in caption.inner_text(), "the prompt as it was typed"
    expect(page.locator("#history-listing")).to_have_text("1 次生成")
    expect(page.locator("#results .caption-label").first).to_contain_text("示範 · imagen-4 ·")
    expect(page.locator("#star")).to_have_text("☆ 加星號")
    shot(page, "languages-run-zh-HK")
    page.context.close()


@pytest.mark.browser
@pytest.mark.parametrize(
    ("languages", "picked", "said", "not_said"),
    [
        (HONG_KONG, "繁體中文", "請輸入提示詞：不可留空", "请输入"),
        (MAINLAND, "简体中文", "请输入提示词：不能为空", "請輸入"),
        (AMERICAN, "English", "Enter a prompt: it is empty.", "提示"),
    ],
    ids=["zh-HK", "zh-CN", "en-US"],
)
def test_an_empty_prompts_toast_is_in_the_browsers_script(
    browser: Browser, served, languages: dict, picked: str, said: str, not_said: str
) -> None:
    page = open_page(browser, served[1], languages, picked)
    page.locator("#generate").click()
    toast = page.locator(".toast-body").filter(has_text=said)
    expect(toast).to_be_visible(timeout=WAIT_MS)
    assert not_said not in toast.inner_text()
    page.context.close()


@pytest.mark.browser
def test_a_failed_run_says_why_in_traditional_chinese(browser: Browser, served) -> None:
    """RunAPI refuses a typed key: the toast, the summary and the key's line say so in
    Traditional Chinese, with the status RunAPI answered."""
    page = open_page(browser, served[1], HONG_KONG, "繁體中文")
    prompt_box(page).fill("A red fox")
    page.locator("#form input[type=password]").fill("sk-this-key-is-wrong")
    page.locator("#generate").click()
    toast = page.locator(".toast-body").filter(has_text="生成失敗：RunAPI 不接受這個 API 金鑰")
    expect(toast).to_be_visible(timeout=WAIT_MS)
    assert "HTTP 401" in toast.inner_text() and "請求編號" in toast.inner_text()
    summary = page.locator("#summary")
    expect(summary).to_contain_text("失敗：RunAPI 不接受這個 API 金鑰", timeout=WAIT_MS)
    expect(page.locator("#key-status")).to_contain_text("RunAPI 不接受這個 API 金鑰")
    assert "did not accept" not in summary.inner_text()
    assert "sk-this-key-is-wrong" not in page.content()
    shot(page, "languages-error-zh-HK")
    page.context.close()


@pytest.mark.browser
def test_a_run_started_in_chinese_goes_on_in_english_after_a_switch(browser: Browser, served):
    page = open_page(browser, served[1], HONG_KONG, "繁體中文")
    prompt_box(page).fill("A slow lighthouse")
    page.locator("#generate").click()
    feed = page.locator("#runs-feed")
    expect(feed).to_contain_text("1 次生成進行中。", timeout=WAIT_MS)

    page.locator("#language").get_by_label("English", exact=True).check()
    summary = page.locator("#summary")
    expect(summary).to_contain_text("1 of 1 images", timeout=WAIT_MS)
    expect(feed).to_contain_text("Recent runs.")
    expect(feed.locator(".run-card-meta")).to_contain_text("Done · ")
    assert "no charge (demo)" in summary.inner_text()
    caption = page.locator("#history .caption-label").first
    expect(caption).to_contain_text("no charge (demo)")
    assert not CHINESE_DATE.search(caption.inner_text())
    expect(page.locator("#star")).to_have_text("☆ Star")
    assert page.locator(".toast-body").count() == 0, "nothing went wrong"
    page.context.close()
