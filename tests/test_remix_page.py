"""Remix mode in Chromium: two uploaded sources remixed, the sources shown with the run,
Remix this from a result, Run again after the upload URLs expired, and the bad inputs a
visitor may give, each a clear message with nothing created. What reaches the simulator
carries no EXIF GPS.

One app in demo mode on its built-in simulator (remix tasks ~1 s, upload URLs that
last UPLOAD_TTL seconds).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from bench.processes import free_port
from runapi_ui.runapi.catalog import REMIX_MODEL
from runapi_ui.runapi.simulator import SimulatorConfig
from runapi_ui.runapi.sources import MAX_SOURCE_BYTES
from runapi_ui.runs.access import DEMO_KEY
from runapi_ui.runs.settings import Settings
from tests.conftest import DESKTOP, WAIT_MS, Served, launched_app, shot, visitor_page
from tests.test_history import field, finished_caption, result_captions, tiles
from tests.test_remix import GPS_SECRET, bomb_png, logo_png, phone_photo

UPLOAD_TTL = 4.0


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    settings = Settings(
        port=free_port(),
        data_dir=tmp_path_factory.mktemp("remix-page"),
        simulator_time_scale=0.05,
        demo=True,
    )
    config = SimulatorConfig(
        time_scale=0.05, api_keys=frozenset({DEMO_KEY}), upload_ttl_seconds=UPLOAD_TTL
    )
    with launched_app(settings, simulator_config=config) as served:
        yield served


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    notes = folder / "notes.png"
    notes.write_bytes(b"shopping list: eggs, milk\n" * 40)
    bomb = folder / "bomb.png"
    bomb.write_bytes(bomb_png(15_000, 15_000))
    big = folder / "big.png"
    big.write_bytes(logo_png(folder / "base.png").read_bytes() + b"\0" * (MAX_SOURCE_BYTES + 2**20))
    return {
        "photo": phone_photo(folder / "IMG_0042.jpg"),
        "logo": logo_png(folder / "logo.png"),
        "notes": notes,
        "bomb": bomb,
        "big": big,
    }


@pytest.fixture(scope="module")
def page(browser: Browser, served: Served) -> Iterator[Page]:
    with visitor_page(browser, served.url) as page:
        switch_to(page, "Remix")
        yield page


def simulator(served: Served):
    assert served.app.simulator is not None
    return served.app.simulator.simulator


def remix_tasks(served: Served) -> list:
    return [task for task in simulator(served).tasks.values() if task.model == REMIX_MODEL]


def clear_sources(page: Page) -> None:
    rows = page.locator("#remix-sources .file-preview tr.file")
    if rows.count():
        page.locator("#remix-sources").get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(0)


def set_sources(page: Page, paths: list[Path]) -> None:
    """The upload's files become `paths` (an upload adds to what is there)."""
    clear_sources(page)
    page.locator("#remix-sources input[type=file]").set_input_files([str(p) for p in paths])
    expect(page.locator("#remix-sources .file-preview tr.file")).to_have_count(
        len(paths), timeout=WAIT_MS
    )


def switch_to(page: Page, mode: str) -> None:
    """The form in `mode` ("Generate" or "Remix"), once the server has shown it."""
    page.locator("#mode").get_by_text(mode, exact=True).click()
    expect(page.locator(f"#{mode.lower()}")).to_be_visible(timeout=WAIT_MS)


def remix(page: Page, prompt: str) -> None:
    field(page, "Prompt").fill(prompt)
    page.locator("#remix").click()


def test_remix_mode_shows_its_own_settings_and_no_seed(page: Page) -> None:
    expect(page.locator("#remix")).to_be_visible()
    expect(page.get_by_role("button", name="Generate", exact=True)).to_be_hidden()
    expect(field(page, "Seed")).to_be_hidden()
    expect(field(page, "Negative prompt")).to_be_hidden()
    expect(page.get_by_text("Output resolution")).to_be_visible()
    expect(page.locator("#remix-settings").get_by_text("Aspect ratio")).to_be_visible()
    # Copy as code follows the mode: the remix's path, with its upload step.
    page.get_by_text("Copy as code").click()
    expect(page.locator("#code-curl")).to_contain_text("/api/v1/imagen_4/remix_image")
    expect(page.locator("#code-python")).to_contain_text("import base64")  # for the uploads
    page.get_by_text("Copy as code").click()


def test_two_uploads_remixed_the_image_lands_and_the_sources_show(
    page: Page, served: Served, files: dict[str, Path]
) -> None:
    uploads_before = len(simulator(served).uploads)
    set_sources(page, [files["photo"], files["logo"]])
    remix(page, "the logo painted on the red wall")
    expect(tiles(page).first).to_contain_text(
        finished_caption("the logo painted on the red wall"), timeout=WAIT_MS
    )
    expect(tiles(page).first).to_contain_text("remix of 2")
    captions = result_captions(page)
    assert any(REMIX_MODEL in caption for caption in captions), captions
    assert captions[-2:] == ["Source 1 of this remix", "Source 2 of this remix"]
    uploads = list(simulator(served).uploads.values())[uploads_before:]
    assert len(uploads) == 2
    # The phone photo's GPS and description did not reach RunAPI (the simulator).
    assert all(GPS_SECRET.encode() not in upload.data for upload in uploads)
    assert all(b"Exif" not in upload.data[:200] for upload in uploads)
    shot(page, "remix-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "remix-390")
    page.set_viewport_size(DESKTOP)


def test_remix_this_adds_the_result_as_a_source(page: Page) -> None:
    page.locator("#results .thumbnail-item").first.click()
    page.locator("#remix-this").click()
    expect(page.locator("#remix-sources .file-preview tr.file")).to_have_count(3, timeout=WAIT_MS)
    expect(page.locator(".toast-body").get_by_text("Added as source 3")).to_be_visible()


def test_run_again_after_the_upload_urls_expired_uploads_again(page: Page, served: Served) -> None:
    before = len(remix_tasks(served))
    uploads_before = len(simulator(served).uploads)
    time.sleep(UPLOAD_TTL + 0.5)  # the run's upload URLs have expired by now
    switch_to(page, "Generate")
    tiles(page).first.click()  # a remix's entry: the form goes back to Remix mode
    expect(page.locator("#remix")).to_be_visible(timeout=WAIT_MS)
    page.get_by_role("button", name="Run again").click()
    expect(tiles(page).nth(1)).to_contain_text("the logo painted", timeout=WAIT_MS)
    expect(tiles(page).first).to_contain_text(
        finished_caption("the logo painted on the red wall"), timeout=WAIT_MS
    )
    expect(tiles(page).first).not_to_contain_text("failed")
    assert len(remix_tasks(served)) == before + 1
    assert len(simulator(served).uploads) == uploads_before + 2


@pytest.mark.parametrize(
    ("sources", "prompt", "message"),
    [
        ([], "a cat", "1 to 8 source images; 0 given"),
        (["logo"] * 9, "a cat", "1 to 8 source images; 9 given"),
        (["notes"], "a cat", "notes.png is not an image that can be read"),
        (["bomb"], "a cat", "bomb.png declares a hundred megapixels or more"),
        (["big"], "a cat", "big.png is too large to remix"),
        (["logo"], "x" * 10_001, "shorten it to at most 10000"),
    ],
    ids=["0-sources", "9-sources", "text-named-png", "bomb", "oversized", "long-prompt"],
)
def test_bad_input_is_a_clear_message_and_nothing_is_created(
    page: Page, served: Served, files: dict[str, Path], sources, prompt, message
) -> None:
    tasks, uploads = len(remix_tasks(served)), len(simulator(served).uploads)
    if sources:
        set_sources(page, [files[name] for name in sources])
    else:
        clear_sources(page)
    remix(page, prompt)
    expect(page.locator(".toast-body").get_by_text(message).first).to_be_visible(timeout=WAIT_MS)
    time.sleep(0.5)
    assert (len(remix_tasks(served)), len(simulator(served).uploads)) == (tasks, uploads)


# --- Paste from the clipboard ---------------------------------------------------------------

PASTED_SIZES = [(97, 61), (45, 77)]  # sizes no other source in this module has


def png_of_size(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (250, 200, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def paste_images(page: Page, target: str, pngs: list[bytes]) -> None:
    """A paste of PNG files onto `target`, as the browser raises it for Ctrl+V of images
    copied elsewhere (a ClipboardEvent carrying a DataTransfer with the Files)."""
    page.locator(target).evaluate(
        """(target, pngs) => {
          const clipboard = new DataTransfer();
          for (const bytes of pngs) {
            const png = new File([new Uint8Array(bytes)], "image.png", {type: "image/png"});
            clipboard.items.add(png);
          }
          target.dispatchEvent(new ClipboardEvent("paste", {
            clipboardData: clipboard, bubbles: true, cancelable: true}));
        }""",
        [list(png) for png in pngs],
    )


def test_pasted_images_become_sources_beside_the_chosen_ones_and_are_remixed(
    page: Page, served: Served, files: dict[str, Path]
) -> None:
    switch_to(page, "Remix")
    set_sources(page, [files["logo"]])
    switch_to(page, "Generate")
    uploads_before = len(simulator(served).uploads)
    paste_images(page, "#results", [png_of_size(size) for size in PASTED_SIZES])
    # The form shows Remix mode, the pasted images added after the chosen logo.
    expect(page.locator("#remix")).to_be_visible(timeout=WAIT_MS)
    rows = page.locator("#remix-sources .file-preview tr.file")
    expect(rows).to_have_count(3, timeout=WAIT_MS)
    expect(rows.nth(0)).to_contain_text("logo")
    remix(page, "the logo on two yellow squares")
    expect(tiles(page).first).to_contain_text(
        finished_caption("the logo on two yellow squares"), timeout=WAIT_MS
    )
    expect(tiles(page).first).to_contain_text("remix of 3")
    expect(page.locator("#results img").first).to_be_visible()
    uploads = list(simulator(served).uploads.values())[uploads_before:]
    sizes = sorted(Image.open(io.BytesIO(upload.data)).size for upload in uploads)
    assert sizes == sorted([*PASTED_SIZES, (300, 200)])


def test_text_pasted_into_the_prompt_stays_text_and_adds_no_source(page: Page) -> None:
    switch_to(page, "Remix")
    clear_sources(page)
    switch_to(page, "Generate")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.evaluate("text => navigator.clipboard.writeText(text)", "a lighthouse at dawn")
    prompt = field(page, "Prompt")
    prompt.fill("")
    prompt.focus()
    page.keyboard.press("ControlOrMeta+V")  # a real paste: the browser's own default action
    expect(prompt).to_have_value("a lighthouse at dawn")
    time.sleep(0.5)  # a wrongly taken paste would have switched the mode by now
    expect(page.locator("#generate")).to_be_visible()
    switch_to(page, "Remix")
    expect(page.locator("#remix-sources .file-preview tr.file")).to_have_count(0)
