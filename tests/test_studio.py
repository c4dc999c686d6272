"""The studio loop in Chromium: runs side by side, the tab's caps, Stop and Stop all, a
reload with several runs in flight, and a history to find things in (star, search,
filters, pages, delete) shared by two tabs of one browser.

The app runs in demo mode on its built-in simulator, whose tasks here take ~2-4 s, so a
second click lands while the first run is still going.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from bench.processes import free_port
from runapi_ui.page.ui import HISTORY_STORAGE_KEY
from runapi_ui.runs.settings import Settings
from tests.conftest import DESKTOP, WAIT_MS, Served, eventually, launched_app, open_page, shot
from tests.test_browser import read_history, write_browser_state
from tests.test_history import creates, field, finished_caption, stored_history, tiles


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Iterator[Served]:
    """Demo tasks of ~2-4 s; a tab may have 2 runs (of up to 8 images) at once."""
    settings = Settings(
        port=free_port(),
        data_dir=tmp_path_factory.mktemp("studio"),
        simulator_time_scale=0.4,
        tab_max_runs=2,
        tab_max_images=8,
    )
    with launched_app(settings) as served:
        yield served


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile: an empty localStorage, shared by its tabs."""
    context = browser.new_context(viewport=DESKTOP)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, studio: Served) -> Page:
    page = context.new_page()
    open_page(page, studio.url)
    return page


def click_generate(page: Page, prompt: str, model: str = "imagen-4-fast") -> None:
    field(page, "Prompt").fill(prompt)
    page.get_by_text(model + " ·", exact=False).first.click()
    page.get_by_role("button", name="Generate", exact=True).click()


def cards(page: Page):
    return page.locator("#runs-feed .run-card")


def card(page: Page, prompt: str):
    return page.locator(f'#runs-feed .run-card[data-prompt="{prompt}"]')


def write_history(page: Page, studio: Served, value: list[dict]) -> None:
    """Store `value` as the page's history, once the page's own load has written it."""
    expect(page.locator("#history-listing")).to_contain_text("0 runs", timeout=WAIT_MS)
    write_browser_state(page, HISTORY_STORAGE_KEY, studio.settings.history_secret, value)
    page.reload()


def history_prompts(page: Page, studio: Served) -> list[str]:
    stored = stored_history(page, studio)
    return [entry["prompt"] for entry in stored or []]


def prompts_with_task_ids(page: Page, studio: Served) -> set[str]:
    """The stored history's runs whose tasks all have RunAPI's ids: what a reload resumes."""
    stored = stored_history(page, studio) or []
    return {
        entry["prompt"]
        for entry in stored
        if all(isinstance(job.get("task_id"), str) for job in entry["jobs"])
    }


def wait_until_idle(page: Page) -> None:
    expect(page.locator("#runs-feed .run-card.is-going")).to_have_count(0, timeout=WAIT_MS)


def test_a_second_generate_while_the_first_runs_starts_a_second_run(
    page: Page, studio: Served
) -> None:
    before = creates(studio.app.simulator)
    # Ultra's run (~5 s here) is still going at the second click, also on a busy machine;
    # it ends after the second, which must keep the results all the same.
    click_generate(page, "A lighthouse at dawn", model="imagen-4-ultra")
    expect(card(page, "A lighthouse at dawn")).to_have_attribute("data-state", "running")
    click_generate(page, "A lighthouse at dusk", model="imagen-4")
    expect(page.locator("#runs-feed .run-card.is-going")).to_have_count(2)
    expect(page.locator("#runs-feed")).to_contain_text("2 runs in flight")
    expect(card(page, "A lighthouse at dusk")).to_have_class("run-card is-shown is-going")
    expect(page.get_by_role("button", name="Stop all 2")).to_be_visible()
    shot(page, "two-runs-in-flight")
    assert creates(studio.app.simulator) == before + 2, "each click created its task"

    wait_until_idle(page)
    expect(card(page, "A lighthouse at dawn")).to_have_attribute("data-state", "done")
    expect(card(page, "A lighthouse at dusk")).to_have_attribute("data-state", "done")
    # Both landed in the history; the results still show the run last started.
    expect(tiles(page).nth(0)).to_contain_text(finished_caption("A lighthouse at dusk"))
    expect(tiles(page).nth(1)).to_contain_text(finished_caption("A lighthouse at dawn"))
    expect(page.locator("#results")).to_contain_text("imagen-4 · 1:1")
    expect(page.locator("#results img")).to_have_count(1)
    assert history_prompts(page, studio) == ["A lighthouse at dusk", "A lighthouse at dawn"]
    shot(page, "two-runs-landed")


def test_the_tabs_cap_says_why_and_creates_nothing_past_it(page: Page, studio: Served) -> None:
    before = creates(studio.app.simulator)
    # Ultra's runs (~5 s here): both are still going when the third click comes, also on
    # a busy machine (the fast model's 1.8 s could end the first before the second began).
    click_generate(page, "First of three", model="imagen-4-ultra")
    click_generate(page, "Second of three", model="imagen-4-ultra")
    expect(page.locator("#runs-feed .run-card.is-going")).to_have_count(2)
    click_generate(page, "Third of three", model="imagen-4-ultra")
    expect(page.get_by_text("2 runs already in flight in this tab")).to_be_visible()
    assert creates(studio.app.simulator) == before + 2, "nothing was created past the cap"
    wait_until_idle(page)
    page.get_by_role("button", name="Generate", exact=True).click()  # room again
    expect(tiles(page).first).to_contain_text(finished_caption("Third of three"), timeout=WAIT_MS)
    assert creates(studio.app.simulator) == before + 3


def test_stop_stops_the_shown_run_and_the_other_lands(page: Page, studio: Served) -> None:
    click_generate(page, "A run that goes on", model="imagen-4")
    click_generate(page, "A run to stop", model="imagen-4")
    expect(page.locator("#runs-feed .run-card.is-going")).to_have_count(2)
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.get_by_text("Stopped “A run to stop”")).to_be_visible()
    expect(card(page, "A run to stop")).to_have_attribute("data-state", "stopped")
    expect(card(page, "A run that goes on")).to_have_attribute(
        "data-state", "done", timeout=WAIT_MS
    )
    expect(tiles(page).nth(1)).to_contain_text(finished_caption("A run that goes on"))

    click_generate(page, "Stop all, one", model="imagen-4-ultra")
    click_generate(page, "Stop all, two", model="imagen-4-ultra")
    page.get_by_role("button", name="Stop all 2").click()
    for prompt in ("Stop all, one", "Stop all, two"):
        expect(card(page, prompt)).to_have_attribute("data-state", "stopped")


def test_a_reload_with_two_runs_in_flight_completes_both_and_shows_the_newer(
    page: Page, studio: Served
) -> None:
    before = creates(studio.app.simulator)
    # Ultra's runs (~5 s here): both are still in flight at the reload, also on a busy
    # machine (imagen-4's 3.2 s let the older end first once in CI).
    click_generate(page, "Older run in flight", model="imagen-4-ultra")
    expect(card(page, "Older run in flight")).to_have_attribute("data-state", "running")
    click_generate(page, "Newer run in flight", model="imagen-4-ultra")
    expect(page.locator("#runs-feed .run-card.is-going")).to_have_count(2)
    eventually(
        lambda: (
            {"Older run in flight", "Newer run in flight"} <= prompts_with_task_ids(page, studio)
        ),
        "the browser stored both runs' task ids",
    )
    page.reload()
    expect(page.locator("#runs-feed .run-card")).to_have_count(2)
    wait_until_idle(page)
    expect(tiles(page).nth(0)).to_contain_text(finished_caption("Newer run in flight"))
    expect(tiles(page).nth(1)).to_contain_text(finished_caption("Older run in flight"))
    expect(page.locator("#summary")).to_contain_text("1 of 1 images")
    expect(page.locator("#results img")).to_have_count(1)
    assert creates(studio.app.simulator) == before + 2, "the reload created nothing"
    assert history_prompts(page, studio)[:2] == ["Newer run in flight", "Older run in flight"]


def entries(prompts: list[str], *, starred: int | None = None) -> list[dict]:
    """A stored history of finished demo runs (no images), newest first."""
    now = time.time()
    return [
        {
            "id": f"entry-{i}",
            "run": f"entry-{i}",
            "kind": "compare" if "compare" in prompt else "generate",
            "created": now - i * 60,
            "prompt": prompt,
            "negative_prompt": "blurry" if i % 2 else "",
            "model": "imagen-4-ultra" if "ultra" in prompt else "imagen-4-fast",
            "aspect_ratio": "1:1",
            "num_images": 1,
            "demo": True,
            "status": "failed" if "failed" in prompt else "done",
            "message": "",
            "duration": 3.0,
            "cost": 0.0,
            "starred": i == starred,
            "jobs": [
                {
                    "model": "imagen-4-ultra" if "ultra" in prompt else "imagen-4-fast",
                    "aspect_ratio": "1:1",
                    "seed": i,
                    "task_id": None,
                    "image": None,
                }
            ],
        }
        for i, prompt in enumerate(prompts)
    ]


def test_star_search_filters_pages_and_delete_survive_a_reload(page: Page, studio: Served) -> None:
    prompts = [f"A fox number {n}" for n in range(20)] + [
        "维多利亚港的夜景 ultra",
        "A failed lighthouse",
        "A fox under the moon ultra",
    ]
    secret = studio.settings.history_secret
    write_history(page, studio, entries(prompts))
    listing = page.locator("#history-listing")
    expect(listing).to_contain_text("23 runs · page 1 of 2")
    expect(tiles(page)).to_have_count(12)
    page.get_by_role("button", name="Older →").click()
    expect(listing).to_contain_text("page 2 of 2")
    expect(tiles(page)).to_have_count(11)

    search = page.locator("#history-search textarea, #history-search input").first
    search.fill("MOON")  # case-insensitive
    expect(listing).to_contain_text("1 of 23 runs match")
    search.fill("港的夜")  # a substring: Chinese has no spaces between words
    expect(listing).to_contain_text("1 of 23 runs match")
    expect(tiles(page).first).to_contain_text("维多利亚港的夜景")
    search.fill("blurry")  # the negative prompt counts too
    expect(listing).to_contain_text("11 of 23 runs match")
    search.fill("")
    page.get_by_label("Model", exact=True).last.click()
    page.get_by_role("option", name="imagen-4-ultra").click()
    expect(listing).to_contain_text("2 of 23 runs match")
    page.get_by_label("Status", exact=True).click()
    page.get_by_role("option", name="Failed", exact=True).click()
    expect(listing).to_contain_text("0 of 23 runs match")
    page.get_by_label("Model", exact=True).last.click()
    page.get_by_role("option", name="All models").click()
    expect(listing).to_contain_text("1 of 23 runs match")
    expect(tiles(page).first).to_contain_text("A failed lighthouse")

    # Star it, then list the starred runs only.
    tiles(page).first.click()
    page.get_by_role("button", name="☆ Star").click()
    expect(page.get_by_role("button", name="★ Unstar")).to_be_visible()
    page.get_by_label("Status", exact=True).click()
    page.get_by_role("option", name="Starred", exact=True).click()
    expect(listing).to_contain_text("1 of 23 runs match · 1 starred")

    # Delete another entry.
    page.get_by_label("Status", exact=True).click()
    page.get_by_role("option", name="Any status").click()
    search.fill("fox number 3")
    # The listing said "1 of 23 runs match" already (the starred run): the tile tells.
    expect(tiles(page)).to_have_count(1)
    expect(tiles(page).first).to_contain_text("A fox number 3")
    tiles(page).first.click()
    # The starred run was selected; Delete is for this one once its Star button shows.
    expect(page.get_by_role("button", name="☆ Star")).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    expect(listing).to_contain_text("0 of 22 runs match")
    shot(page, "history-search")

    eventually(lambda: len(read_history(page, secret)) == 22, "the browser stored the deletion")
    page.reload()
    expect(page.locator("#history-listing")).to_contain_text("22 runs · 1 starred")
    stored = read_history(page, secret)
    assert [e["prompt"] for e in stored if e.get("starred")] == ["A failed lighthouse"]
    assert "A fox number 3" not in [e["prompt"] for e in stored]


def test_a_starred_run_is_kept_past_the_recent_runs_bound(page: Page, studio: Served) -> None:
    old = entries([f"Run {n}" for n in range(61)], starred=60)  # the oldest is starred
    write_history(page, studio, old)
    expect(page.locator("#history-listing")).to_contain_text("61 runs · 1 starred")
    click_generate(page, "One more run")
    expect(tiles(page).first).to_contain_text(finished_caption("One more run"), timeout=WAIT_MS)
    stored = history_prompts(page, studio)
    assert len(stored) == 61 and "Run 60" in stored, "the starred run stayed"
    assert "Run 59" not in stored, "the oldest unstarred run left"


def test_two_tabs_generating_in_turn_both_keep_all_their_entries(
    context: BrowserContext, studio: Served
) -> None:
    first, second = context.new_page(), context.new_page()
    open_page(first, studio.url)
    open_page(second, studio.url)
    for n in range(2):
        for name, tab in (("first", first), ("second", second)):
            prompt = f"Tab {name}, run {n}"
            click_generate(tab, prompt)
            expect(tiles(tab).first).to_contain_text(finished_caption(prompt), timeout=WAIT_MS)
    expected = {f"Tab {name}, run {n}" for name in ("first", "second") for n in range(2)}
    time.sleep(1)  # the last write's news reaches the other tab
    for tab in (first, second):
        assert set(history_prompts(tab, studio)) == expected
        expect(tab.locator("#history-listing")).to_contain_text("4 runs")
    # A delete in one tab is not undone by the other's copy.
    second.reload()
    tiles(first).first.click()
    first.get_by_role("button", name="Delete").click()
    expect(first.locator("#history-listing")).to_contain_text("3 runs")
    click_generate(second, "Tab second, after the delete")
    expect(tiles(second).first).to_contain_text(
        finished_caption("Tab second, after the delete"), timeout=WAIT_MS
    )
    time.sleep(1)
    for tab in (first, second):
        stored = set(history_prompts(tab, studio))
        assert "Tab second, run 1" not in stored, "the deleted run stays deleted"
        assert "Tab second, after the delete" in stored and len(stored) == 4
