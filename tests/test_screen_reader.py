"""What a screen reader hears: runs announced at their milestones (not at every tick of the
feed), in the page's language; images described by their prompt and model; every button
named. Real Chromium on the demo's simulator (the page and fixtures of
test_accessibility.py).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from runapi_ui.page.screen_reader import alt_text, results_alts
from runapi_ui.runapi.simulator import SimulatorConfig, parse_faults
from runapi_ui.runs.playground import COMPARE_MODELS
from runapi_ui.translations import ENGLISH, TRADITIONAL, text
from tests import test_accessibility as accessibility
from tests.conftest import WAIT_MS, eventually
from tests.test_accessibility import EXAMPLES_DRAWN, open_page
from tests.test_simulator import HONG_KONG_PROMPT

# The accessibility tests' app in demo mode (Chromium is conftest's).
served = accessibility.served


# Every sentence the live region is given, in order, into window.__announced; as an init
# script it starts again with each load of the page.
COLLECT = """(() => {
  window.__announced = [];
  new MutationObserver((records) => {
    for (const record of records) {
      if (record.target.id !== "ip-announcer") continue;
      for (const node of record.addedNodes) window.__announced.push(node.textContent);
    }
  }).observe(document, {subtree: true, childList: true});
})()"""


def listen(page: Page) -> None:
    """Collect the live region's sentences from now on, and after each reload."""
    page.context.add_init_script(COLLECT)
    page.evaluate(COLLECT)


def sentences(language: str, prompt: str, images: int) -> list[str]:
    """What a run of `images` images that all arrive is announced as, in order."""
    return [
        text(language, "announce.started", prompt=prompt),
        *(
            text(language, "announce.image_done", done=done, total=images, prompt=prompt)
            for done in range(1, images + 1)
        ),
        text(language, "announce.done", done=images, total=images, prompt=prompt),
    ]


def announced_until(page: Page, last: str) -> list[str]:
    """The sentences said once `last` has been said."""
    page.wait_for_function("(last) => window.__announced.includes(last)", arg=last, timeout=WAIT_MS)
    return page.evaluate("window.__announced")


@contextmanager
def slow_runs(config: SimulatorConfig, seconds: float) -> Iterator[None]:
    """Each image of the simulator takes `seconds`: a run that the feed ticks through."""
    kept = (config.time_scale, config.durations)
    config.time_scale = 1.0
    config.durations = {"imagen-4": (seconds, seconds)}
    try:
        yield
    finally:
        config.time_scale, config.durations = kept


def start_run(page: Page, prompt: str, images: int = 1, language: str = ENGLISH) -> None:
    """Fill the form by its labels in `language`, once the page speaks it, and generate."""
    expect(page.locator("#generate")).to_have_text(text(language, "form.generate"))
    page.get_by_label(text(language, "form.prompt.label"), exact=True).fill(prompt)
    images_box = page.get_by_label(text(language, "form.images")).first
    images_box.fill(str(images))
    images_box.press("Enter")
    page.locator("#generate").click()


@pytest.mark.browser
def test_a_run_is_announced_at_its_milestones_not_every_tick(browser: Browser, served) -> None:
    page = open_page(browser, served[1], 1366)
    listen(page)
    prompt = "A heron in a misty river"
    # A run of ~3 s: the feed is rewritten every half second meanwhile (its clock).
    with slow_runs(served[0].simulator.simulator.config, 1.5):
        start_run(page, prompt, images=2)
        expected = sentences(ENGLISH, prompt, 2)
        assert announced_until(page, expected[-1]) == expected
    expect(page.locator("#ip-announcer")).to_have_attribute("aria-live", "polite")
    page.context.close()


@pytest.mark.browser
def test_a_traditional_chinese_page_announces_in_traditional(browser: Browser, served) -> None:
    page = open_page(browser, served[1], 1366)
    listen(page)
    page.locator("#language").get_by_text("繁體中文").click()
    expect(page.locator(f"#language input[value='{TRADITIONAL}']")).to_be_checked()
    start_run(page, HONG_KONG_PROMPT, language=TRADITIONAL)
    expected = sentences(TRADITIONAL, HONG_KONG_PROMPT, 1)
    assert announced_until(page, expected[-1]) == expected
    assert "張" in expected[1]  # Traditional, as Hong Kong writes it (Simplified: 张)
    page.context.close()


@pytest.mark.browser
def test_a_failed_and_a_stopped_run_are_announced_as_such(browser: Browser, served) -> None:
    page = open_page(browser, served[1], 1366)
    listen(page)
    config = served[0].simulator.simulator.config
    failing, stopped = "A run that fails", "A run that is stopped"
    config.faults = parse_faults("task_fail")
    try:
        start_run(page, failing)
        failed = [
            text(ENGLISH, "announce.started", prompt=failing),
            text(ENGLISH, "announce.failed", done=0, total=1, prompt=failing),
        ]
        assert announced_until(page, failed[-1]) == failed
    finally:
        config.faults = []
    with slow_runs(config, 30.0):
        start_run(page, stopped)
        started = text(ENGLISH, "announce.started", prompt=stopped)
        announced_until(page, started)
        page.locator("#stop").click()
        ended = text(ENGLISH, "announce.stopped", done=0, total=1, prompt=stopped)
        assert announced_until(page, ended) == [*failed, started, ended]
    page.context.close()


@pytest.mark.browser
def test_a_reload_announces_nothing_old(browser: Browser, served) -> None:
    """A run going when the page reloads is not announced as started; its end is."""
    page = open_page(browser, served[1], 1366)
    listen(page)
    prompt = "A lantern on a quiet pier"
    expected = sentences(ENGLISH, prompt, 1)
    with slow_runs(served[0].simulator.simulator.config, 6.0):
        start_run(page, prompt)
        announced_until(page, expected[0])
        page.reload()
        # The image may land before the page is back (then only the end is news).
        assert announced_until(page, expected[-1]) in (expected[1:], expected[2:])
    page.context.close()


def alts(page: Page, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("(images) => images.map((image) => image.alt)")


def alts_when(page: Page, selector: str, done: Callable[[list[str]], bool]) -> list[str]:
    """The alt texts of `selector`'s images once `done(alts)`: the page's script sets them
    a moment after the images arrive, later on a busy machine."""

    def settled() -> list[str] | None:
        found = alts(page, selector)
        return found if done(found) else None

    return eventually(settled, f"the alt texts of {selector} as expected")


def test_alt_text_is_the_prompt_shortened_and_the_model() -> None:
    long = "A red fox curled up in fresh snow at dusk,\n shallow depth of field, " + "x" * 80
    short, model = alt_text(long, "imagen-4-ultra").split(" — ")
    assert (len(short), short[-1], model) == (80, "…", "imagen-4-ultra")
    assert short.startswith("A red fox curled up in fresh snow at dusk, shallow depth of field, x")
    assert alt_text("A kite", "imagen-4") == "A kite — imagen-4"
    entry = {
        "prompt": "A kite & a <b>",
        "jobs": [
            {"model": "imagen-4-fast", "image": {"path": "a.png"}},
            {"model": "imagen-4", "image": None},  # failed: not in the results
            {"model": "imagen-4-ultra", "image": {"path": "c.png"}},
        ],
    }
    carried = re.fullmatch(
        r'<div class="image-alts" hidden data-alts="([^"]*)"></div>', results_alts(entry)
    )
    assert carried, results_alts(entry)
    assert json.loads(html.unescape(carried[1])) == [
        "A kite & a <b> — imagen-4-fast",
        "A kite & a <b> — imagen-4-ultra",
    ]


@pytest.mark.browser
def test_results_and_history_images_have_alt_text(browser: Browser, served) -> None:
    page = open_page(browser, served[1], 1366)
    prompt = (
        "A red fox curled up in fresh snow at dusk, shallow depth of field, 85mm photo, "
        "soft blue light"
    )
    start_run(page, prompt, images=2)
    expect(page.locator("#results img")).to_have_count(2, timeout=WAIT_MS)
    one_model = alt_text(prompt, "imagen-4")
    assert one_model.startswith("A red fox curled up in fresh snow at dusk") and "…" in one_model
    alts_when(page, "#results img", lambda found: found == [one_model] * 2)

    page.get_by_role("button", name="Compare 3 models").click()
    expect(page.locator("#history .thumbnail-item")).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator("#results img")).to_have_count(3, timeout=WAIT_MS)
    each_model = [alt_text(prompt, model) for model in COMPARE_MODELS]
    alts_when(page, "#results img", lambda found: found == each_model)
    captions = page.locator("#results .caption-label").all_inner_texts()
    assert all(model in caption for model, caption in zip(COMPARE_MODELS, captions, strict=True))

    # The history's tiles: each image says its run's prompt and model (its caption).
    alts_when(
        page,
        "#history img",
        lambda tiles: (
            len(tiles) == 2
            and "3 models" in tiles[0]
            and "imagen-4" in tiles[1]
            and all(alt.startswith("A red fox curled up") for alt in tiles)
        ),
    )

    # The preview: the large image and the strip under it.
    page.locator("#results .thumbnail-item").nth(1).click()
    detailed = page.locator("#results img[data-testid=detailed-image]")
    expect(detailed).to_have_attribute("alt", each_model[1])
    alts_when(page, "#results .thumbnail-small img", lambda found: found == each_model)
    page.context.close()


def unnamed_buttons(page: Page) -> list[str]:
    """Buttons Chromium names with nothing, or with no word (an icon), or with an
    untranslated key ("common.upload"): each as its name and its element's attributes."""
    cdp = page.context.new_cdp_session(page)
    nodes: list[dict[str, Any]] = cdp.send("Accessibility.getFullAXTree")["nodes"]
    buttons = [
        node
        for node in nodes
        if not node.get("ignored") and node.get("role", {}).get("value") == "button"
    ]
    assert buttons, "no buttons found"
    unnamed = []
    for node in buttons:
        name = str(node.get("name", {}).get("value", ""))
        if re.search(r"[^\W\d_]", name) and not re.fullmatch(r"[a-z]+(\.[a-z_]+)+", name):
            continue
        element = cdp.send("DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]})
        unnamed.append(f"{name!r}: {element['node']['localName']} {element['node']['attributes']}")
    cdp.detach()
    return unnamed


@pytest.mark.browser
def test_every_button_has_a_name(browser: Browser, served) -> None:
    found: dict[str, list[str]] = {}
    for scheme in ("light", "dark"):
        page = open_page(browser, served[1], 1366, scheme)
        # Loaded: the history listed, the examples drawn (their buttons are empty until
        # Gradio has loaded the component that draws them).
        expect(page.locator("#history-listing")).to_contain_text("runs")
        page.wait_for_function(EXAMPLES_DRAWN)
        found[f"{scheme} fresh"] = unnamed_buttons(page)
        start_run(page, "A kite over the sea")
        expect(page.locator("#history .thumbnail-item")).to_have_count(1, timeout=WAIT_MS)
        found[f"{scheme} after a run"] = unnamed_buttons(page)
        page.reload()
        expect(page.locator("#history .thumbnail-item")).to_have_count(1, timeout=WAIT_MS)
        found[f"{scheme} with history, reloaded"] = unnamed_buttons(page)
        page.locator("#results .thumbnail-item").first.click()
        expect(page.locator("#results img[data-testid=detailed-image]")).to_be_visible()
        found[f"{scheme} preview"] = unnamed_buttons(page)
        page.get_by_role("button", name="Remix this").click()
        expect(page.locator("#remix-sources .file-preview")).to_be_visible(timeout=WAIT_MS)
        found[f"{scheme} remix with a source"] = unnamed_buttons(page)
        page.context.close()
    assert {state: names for state, names in found.items() if names} == {}
