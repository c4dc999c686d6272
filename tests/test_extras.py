"""Files, code and money (issue 10) as a visitor gets them: real Chromium, real app.

One app serves every test here, in demo mode, with a second simulator standing in for
RunAPI for the keys typed into the page (`Served.live`, which records each request).
Each test that runs something types its own key, so no test sees another's balance.
Screenshots land in test-artifacts/extras-*.png.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from bench.processes import free_port
from runapi_ui.page.extras import ExtrasHandlers
from runapi_ui.page.server import PlaygroundApp
from runapi_ui.runapi.simulator import (
    RecordedRequest,
    RunAPISimulator,
    SimulatorConfig,
    SimulatorServer,
    parse_faults,
)
from runapi_ui.runs.access import DEMO_KEY
from runapi_ui.runs.settings import Settings
from runapi_ui.storage.exports import MANIFEST_NAME
from runapi_ui.storage.pnginfo import JSON_KEY, PARAMETERS_KEY, read_settings
from tests.conftest import WAIT_MS, launched_app, script_client, visitor_page
from tests.conftest import shot as conftest_shot

# RunAPI (the `live` simulator) knows these keys; one per test, so balances stay apart.
CODE_KEY = "sk-code-4c1f9e2b7a"
COST_KEY = "sk-cost-8d2a6b0e3f"
BALANCE_KEY = "sk-balance-1b7e5c9d20"
COMPARE_KEY = "sk-compare-6f3a0d8e41"
SCRIPT_KEY = "sk-script-2e9b4c7a15"
HANDLER_KEY = "sk-handler-9a5d1f3c68"
LIVE_KEYS = frozenset({CODE_KEY, COST_KEY, BALANCE_KEY, COMPARE_KEY, SCRIPT_KEY, HANDLER_KEY})
STARTING_BALANCE = "$10.00"  # the simulator's default starting_balance_cents, 1000

# An image the app makes through /generate, with settings no control has by default.
OWL = {
    "prompt": "A brass owl reading a folded map, ink and watercolor",
    "model": "imagen-4-fast",
    "aspect_ratio": "9:16",
    "negative_prompt": "blurry, text",
    "seed": 424242,
}
SIMULATED_FAILURE = "blocked by the safety filter (simulated)"

T = TypeVar("T")


@dataclass
class Served:
    app: PlaygroundApp
    url: str
    live: SimulatorServer  # RunAPI, for typed keys
    data_dir: Path

    @property
    def demo(self) -> RunAPISimulator:
        """The app's own simulator (its config takes faults, its requests are recorded)."""
        assert self.app.simulator is not None
        return self.app.simulator.simulator


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    live = SimulatorServer(
        SimulatorConfig(time_scale=0.0, jitter=0.0, retry_after_seconds=0, api_keys=LIVE_KEYS)
    ).start()
    data_dir = tmp_path_factory.mktemp("extras")
    settings = Settings(
        base_url=live.url,
        port=free_port(),
        simulator_time_scale=0.05,
        data_dir=data_dir,
        images_per_hour=0,
    )
    demo_config = SimulatorConfig(
        time_scale=0.05, jitter=0.0, api_keys=frozenset({DEMO_KEY}), starting_balance_cents=10**9
    )
    with launched_app(settings, simulator_config=demo_config) as app:
        yield Served(app.app, app.url, live, data_dir)
    live.stop()


@pytest.fixture(scope="module")
def owl_png(served: Served) -> Path:
    """A PNG the app made for OWL, as `gradio_client` received it from `/generate`."""
    with script_client(served.url) as client:
        items = client.predict(
            **{**OWL, "seed": str(OWL["seed"])}, num_images=1, api_name="/generate"
        )
    assert len(items) == 1
    return Path(items[0]["image"])


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    """A fresh visitor (empty history) at desktop width."""
    with visitor_page(browser, served.url) as page:
        yield page


# --- helpers -------------------------------------------------------------------------


def shot(page: Page, name: str) -> None:
    conftest_shot(page, f"extras-{name}")  # this module's screenshots side by side


def choose(page: Page, value: str) -> None:
    """Select a model or a ratio by its radio's value."""
    page.locator(f"input[type=radio][value='{value}']").check()


def set_form(
    page: Page,
    prompt: str,
    model: str,
    ratio: str,
    images: int = 1,
    seed: str = "",
    negative: str = "",
) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    choose(page, model)
    expect(page.locator(f"input[type=radio][value='{ratio}']")).to_be_attached()
    choose(page, ratio)
    count = page.get_by_label("Number of images").first
    count.fill(str(images))
    count.press("Enter")
    page.get_by_label("Seed").fill(seed)
    page.get_by_label("Negative prompt").fill(negative)


def form_state(page: Page) -> dict[str, Any]:
    return {
        "prompt": page.get_by_label("Prompt", exact=True).input_value(),
        "checked": page.locator("#form input[type=radio]:checked").evaluate_all(
            "radios => radios.map(radio => radio.value)"
        ),
        "images": page.get_by_label("Number of images").first.input_value(),
        "seed": page.get_by_label("Seed").input_value(),
        "negative": page.get_by_label("Negative prompt").input_value(),
    }


def drop(page: Page, path: Path) -> None:
    """Drop a file on "Read settings from an image" (cleared first, as a visitor must)."""
    clear = page.locator("#read-settings button[aria-label='Clear']")
    if clear.count():
        clear.click()
    page.locator("#read-settings input[type=file]").set_input_files(path)


def code_panel(page: Page, elem_id: str) -> str:
    """The whole code of a panel, from its download link: the editor draws only the
    lines in view, so its text on screen is not all of it."""
    return page.evaluate(
        """async (id) => {
          const link = document.querySelector(`#${id} a.download-link`);
          return await (await fetch(link.href)).text();
        }""",
        elem_id,
    )


def result_captions(page: Page) -> list[str]:
    return page.locator("#results .caption-label").all_inner_texts()


def in_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await a handler from a sync test: Playwright's sync API holds this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def live_requests(served: Served, key: str) -> list[RecordedRequest]:
    return [r for r in list(served.live.simulator.requests) if r.api_key == key]


def download_zip(page: Page, button: str, tmp_path: Path, previous: str | None) -> zipfile.ZipFile:
    """Press a ZIP button, then the file link it offers, as a visitor does."""
    page.get_by_role("button", name=button).click()
    link = page.locator("#zip a.download-link")
    expect(link).to_be_visible(timeout=WAIT_MS)
    if previous is not None:
        expect(link).not_to_have_attribute("href", previous, timeout=WAIT_MS)
    with page.expect_download() as download:
        link.click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    return zipfile.ZipFile(path)


# --- PNGs that carry their settings --------------------------------------------------


def test_saved_images_are_pngs_that_carry_their_settings(served: Served, owl_png: Path) -> None:
    with Image.open(owl_png) as image:
        assert image.format == "PNG"
        assert image.size == (768, 1408), "9:16 at Imagen 4's size"
        chunks = dict(image.info)
    # The JSON chunk holds every field.
    stored = json.loads(chunks[JSON_KEY])
    task_id = stored["task_id"]
    assert task_id in {r.task_id for r in served.demo.requests if r.task_id}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stored["created"])
    assert {k: stored[k] for k in (*OWL, "source", "width", "height")} == {
        **OWL,
        "source": "demo",
        "width": 768,
        "height": 1408,
    }
    # The human-readable one, as A1111's PNG-info readers show it.
    assert chunks[PARAMETERS_KEY] == (
        f"{OWL['prompt']}\nNegative prompt: blurry, text\n"
        f"Model: imagen-4-fast, Aspect ratio: 9:16, Seed: 424242, Size: 768x1408, "
        f"Task: {task_id}, Source: demo"
    )
    # The playground reads back what it wrote.
    settings = read_settings(owl_png)
    assert settings.to_dict() == stored

    # What /generate served is the file the app keeps under data_dir/images.
    saved = list((served.data_dir / "images").glob("imagen-4-fast_424242_*.png"))
    assert len(saved) == 1
    assert saved[0].read_bytes() == owl_png.read_bytes()


# --- read settings from an image ---------------------------------------------------------


def test_dropping_a_png_the_app_made_fills_every_control(page: Page, owl_png: Path) -> None:
    set_form(page, "something else entirely", "imagen-4-ultra", "1:1", images=3, seed="12")
    page.get_by_text("Copy as code").click()

    drop(page, owl_png)
    expect(page.get_by_text("Settings read from the image.")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(OWL["prompt"])
    expect(page.locator("input[type=radio][value='imagen-4-fast']")).to_be_checked()
    expect(page.locator("input[type=radio][value='9:16']")).to_be_checked()
    expect(page.get_by_label("Seed")).to_have_value("424242")
    expect(page.get_by_label("Negative prompt")).to_have_value("blurry, text")
    expect(page.get_by_label("Number of images").first).to_have_value("1")
    assert form_state(page)["checked"] == ["Generate", "imagen-4-fast", "9:16"]  # mode too
    # The code panel follows the form it filled.
    expect(page.locator("#code-python")).to_contain_text('"seed": 424242', timeout=WAIT_MS)
    shot(page, "dropped")


def test_a_dropped_file_without_our_settings_says_why_and_changes_nothing(
    page: Page, tmp_path: Path
) -> None:
    set_form(page, "A quiet harbour at night", "imagen-4", "4:3", images=2, seed="5")
    before = form_state(page)

    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image at all\n")
    drop(page, text_file)
    expect(page.get_by_text("This file is not an image")).to_be_visible(timeout=WAIT_MS)
    assert form_state(page) == before

    plain = tmp_path / "plain.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(plain)
    drop(page, plain)
    expect(page.get_by_text("This PNG carries no generation settings")).to_be_visible(
        timeout=WAIT_MS
    )
    assert form_state(page) == before
    assert page.get_by_text("Settings read from the image.").count() == 0
    shot(page, "dropped-wrong-files")


def test_a_dropped_auto_ratio_png_brings_its_model_and_the_form_still_works(
    page: Page, served: Served
) -> None:
    """`auto` is imagen-4-fast's alone: dropped while another model is chosen, the ratio
    list must become fast's, or every later event refuses the value."""
    set_form(page, "A teapot framed however the model likes", "imagen-4-fast", "auto", seed="31337")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results img")).to_have_count(1, timeout=WAIT_MS)
    (made,) = (served.data_dir / "images").glob("imagen-4-fast_31337_*.png")

    set_form(page, "another prompt", "imagen-4", "16:9")
    drop(page, made)
    expect(page.get_by_text("Settings read from the image.")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("input[type=radio][value='auto']")).to_be_checked()
    expect(page.locator("input[type=radio][value='imagen-4-fast']")).to_be_checked()

    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results .caption-label").first).to_contain_text(
        "imagen-4-fast · auto · seed 31337", timeout=WAIT_MS
    )
    assert page.get_by_text("is not in the list of choices").count() == 0


# --- ZIP downloads -----------------------------------------------------------------------


def test_zip_of_the_run_and_of_the_whole_history(page: Page, tmp_path: Path) -> None:
    set_form(page, "A glass lighthouse in fog", "imagen-4", "16:9", images=2, seed="77")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results img")).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator("#history .thumbnail-item")).to_contain_text(
        "s · no charge", timeout=WAIT_MS
    )

    run_zip = download_zip(page, "Download this run (ZIP)", tmp_path, None)
    slug = "a-glass-lighthouse-in-fog"
    assert sorted(run_zip.namelist()) == [
        f"01_imagen-4_16x9_seed77_{slug}.png",
        f"02_imagen-4_16x9_seed78_{slug}.png",
        MANIFEST_NAME,
    ]
    manifest = json.loads(run_zip.read(MANIFEST_NAME))
    assert manifest["title"] == "A glass lighthouse in fog"
    for index, entry in enumerate(manifest["images"]):
        assert entry["file"] == f"0{index + 1}_imagen-4_16x9_seed{77 + index}_{slug}.png"
        assert {k: entry["settings"][k] for k in ("prompt", "model", "aspect_ratio", "seed")} == {
            "prompt": "A glass lighthouse in fog",
            "model": "imagen-4",
            "aspect_ratio": "16:9",
            "seed": 77 + index,
        }
        assert entry["settings"]["source"] == "demo" and entry["settings"]["task_id"]
        # The image inside carries the same settings in its own chunks.
        inside = tmp_path / entry["file"]
        inside.write_bytes(run_zip.read(entry["file"]))
        assert read_settings(inside).task_id == entry["settings"]["task_id"]
        assert read_settings(inside).seed == 77 + index
    first_href = page.locator("#zip a.download-link").get_attribute("href")

    set_form(page, "A paper crane on a desk", "imagen-4-ultra", "1:1", images=1, seed="5")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#history .thumbnail-item")).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator("#history .thumbnail-item").first).to_contain_text(
        "s · no charge", timeout=WAIT_MS
    )

    everything = download_zip(page, "Download all history (ZIP)", tmp_path, first_href)
    names = sorted(everything.namelist())
    assert names == [
        "01_imagen-4-ultra_1x1_seed5_a-paper-crane-on-a-desk.png",
        f"02_imagen-4_16x9_seed77_{slug}.png",
        f"03_imagen-4_16x9_seed78_{slug}.png",
        MANIFEST_NAME,
    ]
    manifest = json.loads(everything.read(MANIFEST_NAME))
    assert [entry["settings"]["seed"] for entry in manifest["images"]] == [5, 77, 78]
    assert not any(entry.get("missing") for entry in manifest["images"])
    everything_href = page.locator("#zip a.download-link").get_attribute("href")

    # "This run" is the one shown: select the older run in the history, then download.
    page.locator("#history .thumbnail-item").nth(1).click()
    expect(page.locator("#results img")).to_have_count(2, timeout=WAIT_MS)
    older = download_zip(page, "Download this run (ZIP)", tmp_path, everything_href)
    assert sorted(older.namelist()) == sorted(run_zip.namelist())
    shot(page, "zip")


# --- copy as code ------------------------------------------------------------------------


def test_copy_as_code_follows_the_form_never_shows_the_key_and_runs(
    page: Page, served: Served, tmp_path: Path
) -> None:
    page.get_by_text("Copy as code").click()
    set_form(page, "A copper kettle singing on a stove", "imagen-4-ultra", "4:3", seed="99")
    expect(page.locator("#code-python")).to_contain_text("A copper kettle", timeout=WAIT_MS)
    expect(page.locator("#code-python")).to_contain_text('"seed": 99', timeout=WAIT_MS)

    page.get_by_label("RunAPI key").fill(CODE_KEY)
    page.get_by_label("Prompt", exact=True).fill("A copper kettle singing on a gas stove")
    expect(page.locator("#code-curl")).to_contain_text("on a gas stove", timeout=WAIT_MS)
    expect(page.locator("#code-python")).to_contain_text("on a gas stove", timeout=WAIT_MS)
    curl, python = code_panel(page, "code-curl"), code_panel(page, "code-python")

    endpoint = f"{served.live.url}/api/v1/imagen_4/text_to_image"
    assert f"API={endpoint}" in curl and f'API = "{endpoint}"' in python
    assert '"Authorization: Bearer $RUNAPI_API_KEY"' in curl
    assert 'os.environ["RUNAPI_API_KEY"]' in python
    body = {
        "model": "imagen-4-ultra",
        "prompt": "A copper kettle singing on a gas stove",
        "aspect_ratio": "4:3",
        "seed": 99,
    }
    for code in (curl, python):
        assert CODE_KEY not in code
    assert CODE_KEY not in page.content()
    shot(page, "code")

    # The code as the page shows it runs against RunAPI (the simulator) to an image.
    before = len(live_requests(served, CODE_KEY))
    environment = {**os.environ, "RUNAPI_API_KEY": CODE_KEY}
    for name, command in (
        ("curl", ["bash", "-c", curl]),
        ("python", [sys.executable, "-c", python]),
    ):
        folder = tmp_path / name
        folder.mkdir()
        done = subprocess.run(
            command, cwd=folder, env=environment, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        (saved,) = folder.glob("*.png")
        with Image.open(saved) as image:
            assert image.format == "PNG" and image.size == (1280, 896)
    creates = [r for r in live_requests(served, CODE_KEY)[before:] if r.method == "POST"]
    assert [r.body for r in creates] == [body, body]


# --- cost and balance --------------------------------------------------------------------


def test_cost_before_and_after_a_run_and_the_history_total(page: Page) -> None:
    cost = page.locator("#cost")
    expect(cost).to_have_text("Demo: no charge.")
    set_form(page, "A lemon tree in a courtyard", "imagen-4-fast", "1:1", seed="3")
    page.get_by_role("button", name="Generate").click()
    tile = page.locator("#history .thumbnail-item").first
    expect(tile).to_contain_text("s · no charge (demo)", timeout=WAIT_MS)
    expect(page.locator("#summary")).to_contain_text("no charge (demo)", timeout=WAIT_MS)

    page.get_by_label("RunAPI key").fill(COST_KEY)
    expect(cost).to_contain_text("Estimated cost: $0.04 (1 × $0.04, your key)", timeout=WAIT_MS)
    expect(cost).to_contain_text("RunAPI's live prices (as of", timeout=WAIT_MS)
    choose(page, "imagen-4-ultra")
    expect(cost).to_contain_text("Estimated cost: $0.12 (1 × $0.12", timeout=WAIT_MS)
    count = page.get_by_label("Number of images").first
    count.fill("3")
    count.press("Enter")
    expect(cost).to_contain_text("Estimated cost: $0.36 (3 × $0.12", timeout=WAIT_MS)
    shot(page, "cost-before")

    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#results img")).to_have_count(3, timeout=WAIT_MS)
    expect(tile).to_contain_text("imagen-4-ultra", timeout=WAIT_MS)
    expect(tile).to_contain_text("$0.36", timeout=WAIT_MS)
    expect(page.locator("#summary")).to_contain_text("$0.36 charged · $0.36 spent in your history")
    # The balance is read again after the run: 10.00 - 3 × 0.12.
    expect(page.locator("#key-status")).to_contain_text("balance $9.64", timeout=WAIT_MS)

    choose(page, "imagen-4")
    count.fill("1")
    count.press("Enter")
    expect(cost).to_contain_text("Estimated cost: $0.08 (1 × $0.08", timeout=WAIT_MS)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#history .thumbnail-item")).to_have_count(3, timeout=WAIT_MS)
    expect(tile).to_contain_text("$0.08", timeout=WAIT_MS)
    expect(page.locator("#summary")).to_contain_text("$0.08 charged · $0.44 spent in your history")
    expect(page.locator("#key-status")).to_contain_text("balance $9.56", timeout=WAIT_MS)
    shot(page, "cost-after")


def test_balance_for_a_typed_key_and_a_rejected_key_before_any_create(
    page: Page, served: Served
) -> None:
    key_field = page.get_by_label("RunAPI key")
    key_field.fill(BALANCE_KEY)
    page.get_by_role("button", name="Check key").click()
    status = page.locator("#key-status")
    expect(status).to_have_text(f"Your key: balance {STARTING_BALANCE}.", timeout=WAIT_MS)

    page.get_by_role("button", name="Forget key").click()
    expect(key_field).to_have_value("")
    expect(status).to_contain_text("Key forgotten")

    wrong = "sk-not-a-key-of-this-account"
    key_field.fill(wrong)
    key_field.press("Tab")  # leaving the field checks it: no Generate needed
    expect(status).to_contain_text("RunAPI did not accept the API key", timeout=WAIT_MS)
    seen = live_requests(served, wrong)
    assert seen and all(r.method == "GET" and r.path == "/api/v1/me/balance" for r in seen)
    for key in (BALANCE_KEY, wrong):
        assert key not in page.content()
    shot(page, "key-rejected")


# --- compare -----------------------------------------------------------------------------


def test_compare_shows_three_labelled_images_side_by_side(page: Page, served: Served) -> None:
    page.get_by_label("RunAPI key").fill(COMPARE_KEY)
    set_form(page, "A red bicycle against a blue wall", "imagen-4", "16:9", seed="5")
    page.get_by_role("button", name="Compare 3 models").click()
    expect(page.locator("#results img")).to_have_count(3, timeout=WAIT_MS)
    tile = page.locator("#history .thumbnail-item")
    expect(tile.first).to_contain_text("$0.24", timeout=WAIT_MS)  # 0.04 + 0.08 + 0.12
    expect(tile).to_have_count(1)
    expect(tile.first).to_contain_text("3 models")

    shot(page, "compare")
    # Labelled, in the order of the models' price: model, ratio, seed, time taken, price.
    captions = result_captions(page)
    expected = (("imagen-4-fast", "0.04"), ("imagen-4", "0.08"), ("imagen-4-ultra", "0.12"))
    assert len(captions) == 3
    for caption, (model, price) in zip(captions, expected, strict=True):
        assert re.fullmatch(rf"{model} · 16:9 · seed 5 · \d+\.\d s · \${price} charged", caption), (
            captions
        )
    creates = [r for r in live_requests(served, COMPARE_KEY) if r.method == "POST"]
    assert sorted(r.body["model"] for r in creates) == sorted(model for model, _ in expected)
    assert {(r.body["seed"], r.body["aspect_ratio"]) for r in creates} == {(5, "16:9")}
    # Side by side: the three sit on one row at desktop width.
    boxes = [item.bounding_box() for item in page.locator("#results .thumbnail-item").all()]
    tops = {round(box["y"]) for box in boxes if box}
    assert len(tops) == 1, f"the three images are not on one row: {boxes}"


def test_compare_with_one_model_failing_still_shows_the_other_two(
    page: Page, served: Served
) -> None:
    served.demo.config.faults = parse_faults("task_fail:imagen-4-ultra")
    try:
        set_form(page, "A snow globe with a tiny city inside", "imagen-4", "1:1", seed="8")
        page.get_by_role("button", name="Compare 3 models").click()
        expect(page.get_by_text(SIMULATED_FAILURE).first).to_be_visible(timeout=WAIT_MS)
        tile = page.locator("#history .thumbnail-item")
        expect(tile.first).to_contain_text("partly failed", timeout=WAIT_MS)
    finally:
        served.demo.config.faults = []
    expect(page.locator("#results img")).to_have_count(2)
    captions = result_captions(page)
    assert [c.split(" · ")[1] for c in captions] == ["imagen-4-fast", "imagen-4"]
    assert all(c.startswith("Demo · ") and c.endswith(" · no charge") for c in captions)
    expect(tile).to_have_count(1)  # one compare, one history entry
    expect(tile.first).to_contain_text("3 models")
    expect(page.locator("#summary")).to_contain_text("2 of 3 images · 3 models")
    expect(page.locator("#summary")).to_contain_text(SIMULATED_FAILURE)
    shot(page, "compare-one-failed")


def test_compare_through_gradio_client_by_keyword(served: Served) -> None:
    with script_client(served.url) as client:
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        items = client.predict(
            prompt="A stack of pancakes with berries",
            aspect_ratio="3:4",
            seed="11",
            api_key=SCRIPT_KEY,
            api_name="/compare",
        )
    parameters = {p["parameter_name"] for p in endpoints["/compare"]["parameters"]}
    assert {"prompt", "aspect_ratio", "negative_prompt", "seed", "api_key"} <= parameters
    assert [item["caption"].split(" · ")[0] for item in items] == [
        "imagen-4-fast",
        "imagen-4",
        "imagen-4-ultra",
    ]
    for item, model in zip(items, ("imagen-4-fast", "imagen-4", "imagen-4-ultra"), strict=True):
        settings = read_settings(Path(item["image"]))
        assert (settings.model, settings.aspect_ratio, settings.seed) == (model, "3:4", 11)
        assert settings.source == "RunAPI"
    creates = [r for r in live_requests(served, SCRIPT_KEY) if r.method == "POST"]
    assert len(creates) == 3


def test_compare_through_gradio_client_with_a_ratio_only_one_model_takes(served: Served) -> None:
    """The page's promise for `auto` holds for scripts too: fast draws at auto, the
    other two at the nearest ratio they take."""
    with script_client(served.url) as client:
        items = client.predict(
            prompt="A kite over a beach", aspect_ratio="auto", seed="4", api_name="/compare"
        )
    assert [item["caption"].split(" · ")[1:3] for item in items] == [
        ["imagen-4-fast", "auto"],
        ["imagen-4", "1:1"],
        ["imagen-4-ultra", "1:1"],
    ]


# --- at a phone's width ------------------------------------------------------------------


def test_compare_and_the_panels_at_a_phones_width(browser: Browser, served: Served) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(served.url)
    # `auto` is imagen-4-fast's alone: the other two draw at the nearest ratio, and say so.
    set_form(page, "A hot air balloon over vineyards", "imagen-4-fast", "auto", seed="21")
    page.get_by_role("button", name="Compare 3 models").click()
    expect(page.get_by_text("do not take auto: they draw at 1:1")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#results img")).to_have_count(3, timeout=WAIT_MS)
    expect(page.locator("#history .thumbnail-item").first).to_contain_text(
        "3 models", timeout=WAIT_MS
    )
    assert [caption.split(" · ")[1:3] for caption in result_captions(page)] == [
        ["imagen-4-fast", "auto"],
        ["imagen-4", "1:1"],
        ["imagen-4-ultra", "1:1"],
    ]
    page.get_by_text("Copy as code").click()
    expect(page.locator("#code-curl")).to_contain_text("RUNAPI_API_KEY", timeout=WAIT_MS)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "phone")
    context.close()


# --- the handlers, without a browser -----------------------------------------------------


def test_check_key_says_what_a_key_is_worth_and_creates_nothing(served: Served) -> None:
    extras = ExtrasHandlers(served.app.playground)

    def check(key: str) -> str:
        return in_own_loop(extras.on_check_key(key))

    assert check("") == "", "the demo needs no key check: no charge"
    good = check(f"  {HANDLER_KEY} ")
    assert "key-ok" in good and f"Your key: balance {STARTING_BALANCE}." in good

    rejected = check("sk-handler-wrong")
    assert "key-bad" in rejected and "RunAPI did not accept the API key" in rejected
    spaced = check("sk-two words")
    assert "key-bad" in spaced and "spaces or unusual characters" in spaced
    assert "sk-two words" not in spaced and "sk-handler-wrong" not in rejected
    assert not [
        r
        for r in served.live.simulator.requests
        if r.method == "POST"
        and r.api_key
        in (
            HANDLER_KEY,
            "sk-handler-wrong",
        )
    ]


def test_a_zip_with_nothing_to_download_or_a_forged_path_reads_no_file(
    served: Served, tmp_path: Path
) -> None:
    extras = ExtrasHandlers(served.app.playground)
    with pytest.raises(gr.Error, match="nothing to download yet"):
        in_own_loop(extras.on_download_run([], None))

    secret = tmp_path / "imagen-4_1_AAAAAAAAAAAAAAAAAAAAAAAA.png"  # outside the image folder
    secret.write_bytes(b"not for visitors")
    forged = {
        "id": "forged",
        "run": "forged",
        "kind": "generate",
        "created": 1_750_000_000,
        "prompt": "a forged entry",
        "negative_prompt": "",
        "model": "imagen-4",
        "aspect_ratio": "1:1",
        "num_images": 1,
        "demo": True,
        "status": "done",
        "message": "",
        "duration": 1.0,
        "cost": 0.0,
        "jobs": [
            {
                "model": "imagen-4",
                "aspect_ratio": "1:1",
                "seed": 1,
                "task_id": "t",
                "seconds": 1.0,
                "error": "",
                "image": {"path": str(secret), "thumb": "", "width": 1, "height": 1},
            }
        ],
    }
    offered = in_own_loop(extras.on_download_run([forged], "forged"))
    with zipfile.ZipFile(offered.value["path"]) as archive:
        assert archive.namelist() == [MANIFEST_NAME]
        manifest = json.loads(archive.read(MANIFEST_NAME))
    assert manifest["images"][0]["missing"] is True
