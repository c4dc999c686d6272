"""The playground as a person uses it: Debian's Chromium, driven by Playwright.

Screenshots land in test-artifacts/ (git ignores it). `.ci/run` installs Chromium;
on a machine without it: `apt-get install -y chromium`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from bench.processes import free_port
from runapi_ui.page.server import PlaygroundApp
from runapi_ui.page.ui import HISTORY_STORAGE_KEY
from runapi_ui.runapi.catalog import MODELS
from runapi_ui.runapi.simulator import SimulatorConfig, SimulatorServer, parse_faults
from runapi_ui.runs.settings import Settings
from tests.conftest import launched_app, shot, visitor_page
from tests.test_app import ALICE, BOB, LIVE_KEYS


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[PlaygroundApp, str, SimulatorServer]]:
    """The app in demo mode, its tasks ~2-4 s so the progress bar can be watched,
    and a second simulator standing in for RunAPI for visitors who type a key."""
    with SimulatorServer(SimulatorConfig(time_scale=0.1, api_keys=LIVE_KEYS)) as live:
        settings = Settings(
            base_url=live.url,
            port=free_port(),
            simulator_time_scale=0.5,
            data_dir=tmp_path_factory.mktemp("served"),
        )
        with launched_app(settings) as app:
            yield app.app, app.url, live


@pytest.fixture
def page(browser: Browser, served) -> Iterator[Page]:
    with visitor_page(browser, served[1]) as page:
        yield page


def fill_form(page: Page, prompt: str, model: str, ratio: str, images: int) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label(MODELS[model].choice_label, exact=True).check()
    page.get_by_label(ratio, exact=True).check()
    page.get_by_label("Number of images").first.fill(str(images))
    page.get_by_label("Number of images").first.press("Enter")


def gallery_captions(page: Page) -> list[str]:
    text = page.locator("#results").inner_text()
    return re.findall(r"Demo · [^\n]+|imagen-4[^\n]*seed \d+", text)


def test_the_ratio_follows_the_model_and_a_quick_pick_sticks(page: Page, served) -> None:
    """Ultra has no `auto`: picking it moves the ratio to 1:1. A ratio picked right after a
    model stays picked once the server has answered the model change."""
    ratio = lambda label: page.get_by_label(label, exact=True)  # noqa: E731
    page.get_by_label(MODELS["imagen-4-fast"].choice_label, exact=True).check()
    ratio("auto").check()
    page.get_by_label(MODELS["imagen-4-ultra"].choice_label, exact=True).check()
    expect(ratio("1:1")).to_be_checked()
    expect(ratio("auto")).to_have_count(0)
    for model, picked in (("imagen-4", "16:9"), ("imagen-4-fast", "3:4"), ("imagen-4", "4:3")):
        page.get_by_label(MODELS[model].choice_label, exact=True).click()
        ratio(picked).click()
        page.wait_for_timeout(800)  # long after the model's answer has landed
        expect(ratio(picked)).to_be_checked()


def test_prompt_to_gallery_with_a_moving_progress_bar(page: Page, served) -> None:
    expect(page.get_by_text("Demo mode.")).to_be_visible()
    fill_form(page, "A lighthouse on a cliff at dawn", "imagen-4-fast", "16:9", 2)
    page.get_by_role("button", name="Generate").click()

    card = page.locator("#runs-feed .run-card.is-going")  # the run's own card, while it runs
    expect(card).to_be_visible()
    readings, bars = [], []
    for _ in range(12):
        readings += card.locator(".run-card-meta").all_inner_texts()  # gone once it ends
        bars += [
            int(value)
            for value in card.locator("progress").evaluate_all(
                "(bars) => bars.map((bar) => bar.value)"
            )
        ]
        time.sleep(0.2)
    shot(page, "generating")
    assert any("of 2 images done" in reading for reading in readings), readings
    assert len(set(readings)) >= 3, f"the card should move while it works: {readings}"
    assert bars == sorted(bars) and len(set(bars)) >= 2, f"its bar should fill: {bars}"

    expect(page.locator("#results img")).to_have_count(2)
    captions = gallery_captions(page)
    assert len(captions) == 2 and all("imagen-4-fast · 16:9 · seed" in c for c in captions)
    expect(page.locator("#summary")).to_contain_text("2 of 2 images")
    shot(page, "gallery")

    # A second run shows on its own; the first stays in the history, below it.
    fill_form(page, "A paper boat on a puddle", "imagen-4-ultra", "1:1", 1)
    page.get_by_role("button", name="Generate").click()
    tiles = page.locator("#history .thumbnail-item")
    expect(tiles).to_have_count(2)
    expect(tiles.first).to_contain_text("A paper boat on a puddle")
    expect(tiles.nth(1)).to_contain_text("A lighthouse on a cliff at dawn")
    expect(page.locator("#results img")).to_have_count(1)
    assert "imagen-4-ultra · 1:1 · seed" in page.locator("#results").inner_text()


def test_a_failure_shows_what_to_do_and_the_page_stays_usable(page: Page) -> None:
    page.get_by_role("button", name="Generate").click()  # nothing typed yet
    expect(page.get_by_text("Enter a prompt: it is empty.")).to_be_visible()

    fill_form(page, "A red fox", "imagen-4-fast", "1:1", 1)
    page.get_by_label("RunAPI key").fill("sk-this-key-is-wrong")
    page.get_by_role("button", name="Generate").click()
    # The toast says it; so do the run's summary line and the key's status line.
    message = page.locator(".toast-body").get_by_text("RunAPI did not accept the API key")
    expect(message).to_be_visible()
    expect(page.locator("#summary")).to_contain_text("did not accept the API key")
    assert "Traceback" not in page.content()
    shot(page, "error")

    page.get_by_label("RunAPI key").fill("")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results img")).to_have_count(1)


def test_stop_ends_the_run_and_keeps_finished_images(page: Page, served) -> None:
    app, _, _ = served
    simulator = app.simulator.simulator
    simulator.config.faults = parse_faults("stuck*1")  # of two images, one never finishes
    try:
        fill_form(page, "A slow snail", "imagen-4-fast", "1:1", 2)
        page.get_by_role("button", name="Generate").click()
        expect(page.locator("#results img")).to_have_count(1)
        page.get_by_role("button", name="Stop").click()
        stopped = page.get_by_text("Stopped “A slow snail”. Its finished images are kept.")
        expect(stopped).to_be_visible()
        time.sleep(0.5)
        seen = len(simulator.requests)
        time.sleep(2.0)
        assert len(simulator.requests) == seen, "polling went on after Stop"
        expect(page.locator("#results img")).to_have_count(1)
        # The summary is this run's own, stopped with its one image: not an earlier run's.
        expect(page.locator("#summary")).to_contain_text("1 of 2 images")
        expect(page.locator("#summary")).to_contain_text("stopped")
        expect(page.locator("#history .thumbnail-item").first).to_contain_text("A slow snail")
        shot(page, "stopped")
    finally:
        simulator.config.faults = []


def test_it_works_at_a_phones_width(browser: Browser, served) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(served[1])
    fill_form(page, "A tiny cactus in a pot", "imagen-4", "9:16", 1)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results img")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "phone")
    context.close()


def test_two_visitors_keys_stay_their_own_and_out_of_the_browser(browser: Browser, served):
    _, url, live = served
    pages = {}
    for key in (ALICE, BOB):
        context = browser.new_context()
        pages[key] = page = context.new_page()
        page.goto(url)
        fill_form(page, f"A portrait for visitor {key[3:8]}", "imagen-4-fast", "1:1", 1)
        page.get_by_label("RunAPI key").fill(key)
    before = len(live.simulator.requests)
    for page in pages.values():
        page.get_by_role("button", name="Generate").click()
    for page in pages.values():
        expect(page.locator("#results img")).to_have_count(1)

    creates = [r for r in list(live.simulator.requests)[before:] if r.method == "POST"]
    assert sorted(r.api_key for r in creates) == sorted([ALICE, BOB])
    secret = served[0].playground.settings.history_secret
    for key, page in pages.items():
        other = BOB if key == ALICE else ALICE
        stored = page.evaluate(STORED_IN_BROWSER)
        history = read_history(page, secret)
        assert history and history[0]["prompt"].endswith(key[3:8]), "the run is in the history"
        for api_key in (key, other):
            assert api_key not in page.content(), "a key is in the page's HTML"
            assert api_key not in stored, "a key is stored in the browser"
            assert api_key not in json.dumps(history), "a key is in the (encrypted) history"
        assert page.context.cookies() == [] or all(
            key not in cookie["value"] for cookie in page.context.cookies()
        )
        page.context.close()


# Everything the page keeps: local and session storage, and every IndexedDB record
# (where Gradio's run history would keep event inputs).
STORED_IN_BROWSER = """async () => {
  const parts = [JSON.stringify(localStorage), JSON.stringify(sessionStorage)];
  for (const info of await indexedDB.databases()) {
    const db = await new Promise((ok, fail) => {
      const request = indexedDB.open(info.name);
      request.onsuccess = () => ok(request.result);
      request.onerror = () => fail(request.error);
    });
    for (const store of db.objectStoreNames) {
      const rows = await new Promise((ok) => {
        const request = db.transaction(store).objectStore(store).getAll();
        request.onsuccess = () => ok(request.result);
      });
      parts.push(JSON.stringify(rows));
    }
    db.close();
  }
  return parts.join("\\n");
}"""


# gr.BrowserState, as Gradio 6.31's frontend keeps it: CryptoJS AES-256-CBC with a
# passphrase (OpenSSL's EVP_BytesToKey: MD5, one round, an 8-byte salt), stored as
# "<base64 of 16 unused bytes>:<base64 of 'Salted__' + salt + ciphertext>"; the
# passphrase is the hex SHA-256 of the state's `secret`. Python derives the key; the
# page's own WebCrypto does the AES, so tests read and write exactly what Gradio does.
AES_CBC = """async ([mode, key, iv, data]) => {
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const aes = await crypto.subtle.importKey("raw", bytes(key), "AES-CBC", false, [mode]);
  const input = mode === "decrypt" ? bytes(data) : new TextEncoder().encode(data);
  const output = new Uint8Array(
    await crypto.subtle[mode]({name: "AES-CBC", iv: bytes(iv)}, aes, input));
  if (mode === "decrypt") return new TextDecoder().decode(output);
  let text = "";
  for (const byte of output) text += String.fromCharCode(byte);
  return btoa(text);
}"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _key_and_iv(secret: str, salt: bytes) -> tuple[bytes, bytes]:
    passphrase = hashlib.sha256(secret.encode()).hexdigest().encode()
    derived = block = b""
    while len(derived) < 48:
        block = hashlib.md5(block + passphrase + salt).digest()
        derived += block
    return derived[:32], derived[32:48]


def read_browser_state(page: Page, storage_key: str, secret: str) -> Any:
    """The value a gr.BrowserState holds in this page's localStorage (None if unset)."""
    stored = page.evaluate("(key) => localStorage.getItem(key)", storage_key)
    if stored is None:
        return None
    sealed = base64.b64decode(stored.split(":", 1)[1])
    assert sealed[:8] == b"Salted__", "not the format Gradio writes"
    key, iv = _key_and_iv(secret, sealed[8:16])
    return json.loads(page.evaluate(AES_CBC, ["decrypt", _b64(key), _b64(iv), _b64(sealed[16:])]))


def read_history(page: Page, secret: str) -> Any:
    """The history the page keeps: its BrowserState holds it as one JSON text."""
    text = read_browser_state(page, HISTORY_STORAGE_KEY, secret)
    return None if text is None else json.loads(text)


def write_browser_state(page: Page, storage_key: str, secret: str, value: Any) -> None:
    """Store `value` as the gr.BrowserState would: what a visitor editing it can do."""
    salt = os.urandom(8)
    key, iv = _key_and_iv(secret, salt)
    cipher = page.evaluate(AES_CBC, ["encrypt", _b64(key), _b64(iv), json.dumps(value)])
    sealed = _b64(b"Salted__" + salt + base64.b64decode(cipher))
    page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)",
        [storage_key, f"{_b64(os.urandom(16))}:{sealed}"],
    )
