"""Remix runs end to end: sources kept, uploaded on the run's key (in the worker process
or in the app's), tasks created with the URLs, images saved with their settings, the
history entry, and Run again after the upload URLs expired.

Against the simulator on loopback at time scale 0, through `Playground` as every way in.
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from pathlib import Path

import pytest

from runapi_ui.runapi.catalog import MODELS, REMIX_MODEL
from runapi_ui.runapi.errors import RunAPIError, ValidationError
from runapi_ui.runapi.polling import DurationStats
from runapi_ui.runs import history as hist
from runapi_ui.runs.playground import Playground
from runapi_ui.runs.quota import limits_from
from runapi_ui.runs.registry import _without_frames
from runapi_ui.runs.remixing import keep_sources, kept_sources, remix_requests
from runapi_ui.runs.settings import Settings
from runapi_ui.storage.exports import build_zip_async
from runapi_ui.storage.images import ImageStore
from runapi_ui.storage.pnginfo import read_settings
from tests.conftest import FAST_PRIOR_SECONDS
from tests.test_remix import GPS_SECRET, XMP_SECRET, logo_png, phone_photo, uploaded_bytes

KEY = "sk-remix-owner-0123"


@pytest.fixture(params=[True, False], ids=["worker", "in-process"])
async def playground(request, make_simulator, tmp_path: Path):
    server = make_simulator(upload_ttl_seconds=1.0)
    settings = Settings(base_url=server.url, data_dir=tmp_path / "data", worker=request.param)
    store = ImageStore(settings.image_dir)
    fast = DurationStats({name: FAST_PRIOR_SECONDS for name in (*MODELS, REMIX_MODEL)})
    playground = Playground(
        settings, store, None, limits=limits_from(settings), live_durations=fast
    )
    playground.server = server  # type: ignore[attr-defined] - for the test's eyes
    yield playground
    await playground.runs.aclose()
    if playground.worker is not None:
        playground.worker.stop()


def remix_bodies(server) -> list[dict]:
    return [task.body for task in server.simulator.tasks.values() if task.model == REMIX_MODEL]


async def test_a_remix_run_uploads_on_its_key_and_saves_images_with_settings(
    playground, tmp_path: Path
) -> None:
    server = playground.server
    sources = [phone_photo(tmp_path / "IMG_0042.jpg"), logo_png(tmp_path / "logo.png")]
    run = await playground.start_remix(
        prompt="put the logo on the red wall",
        sources=sources,
        aspect_ratio="4:3",
        output_resolution="2k",
        output_format="jpg",
        num_images=2,
        api_key=KEY,
    )
    await run.finished()
    assert run.status.value == "done", run.failures()
    assert len(run.images) == 2
    # Two uploads, the sources' cleaned bytes: no GPS, no XMP, not the visitor's names.
    uploads = list(server.simulator.uploads.values())
    assert len(uploads) == 2
    assert all(
        GPS_SECRET.encode() not in data and XMP_SECRET not in data
        for data in uploaded_bytes(server)
    )
    assert {upload.file_name for upload in uploads} == {"source-1.jpg", "source-2.png"}
    bodies = remix_bodies(server)
    assert len(bodies) == 2
    assert all(len(body["source_image_urls"]) == 2 for body in bodies)
    assert {body["output_resolution"] for body in bodies} == {"2k"}
    # The run's key paid for the uploads and the tasks.
    assert {r.api_key for r in server.simulator.requests} == {KEY}

    settings = read_settings(run.images[0].path)
    assert settings.model == REMIX_MODEL
    assert (settings.source_images, settings.output_resolution, settings.aspect_ratio) == (
        2,
        "2k",
        "4:3",
    )
    png_text = run.images[0].path.read_bytes()
    for body in bodies:
        for url in body["source_image_urls"]:
            assert url.encode() not in png_text

    entry = await hist.finished_entry(run, playground.store)
    assert entry["kind"] == "remix"
    assert entry["cost"] == 0.36  # 2 × 18 cents at 2k
    assert len(entry["sources"]) == 2
    previews = [playground.store.resolve(source["thumb"]) for source in entry["sources"]]
    assert all(preview and preview.suffix == ".webp" for preview in previews), previews
    text = json.dumps(entry)
    assert "uploads/" not in text and KEY not in text
    assert hist.clean([entry]) == [entry]
    captions = [caption for _, caption in hist.gallery_items(entry, playground.store)]
    assert captions[-2:] == ["Source 1 of this remix", "Source 2 of this remix"]


async def test_run_again_after_the_upload_urls_expired_uploads_again(
    playground, tmp_path: Path
) -> None:
    server = playground.server
    run = await playground.start_remix(
        prompt="golden hour", sources=[logo_png(tmp_path / "a.png")], api_key=KEY
    )
    await run.finished()
    assert run.status.value == "done", run.failures()
    entry = await hist.finished_entry(run, playground.store)
    await asyncio.sleep(1.1)  # the simulator's upload URLs last 1 s here

    again = await playground.start_requests(
        hist.requests_of(entry),
        api_key=KEY,
        kind="remix",
        sources=kept_sources(playground.store, hist.sources_of(entry)),
    )
    await again.finished()
    assert again.status.value == "done", again.failures()
    assert len(server.simulator.uploads) == 2
    first, second = remix_bodies(server)
    assert first["source_image_urls"] != second["source_image_urls"]


async def test_wait_again_on_a_remix_task_uploads_nothing(playground, tmp_path: Path) -> None:
    server = playground.server
    run = await playground.start_remix(
        prompt="golden hour", sources=[logo_png(tmp_path / "a.png")], api_key=KEY
    )
    await run.finished()
    entry = await hist.finished_entry(run, playground.store)
    task_id = entry["jobs"][0]["task_id"]
    again = await playground.start_requests(
        hist.requests_of(entry), api_key=KEY, kind="remix", task_ids=[task_id]
    )
    await again.finished()
    assert again.status.value == "done", again.failures()
    assert len(server.simulator.uploads) == 1


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"sources": []}, "1 to 8 source images"),
        ({"prompt": "x" * 10_001}, "at most 10000"),
        ({"output_resolution": "8k"}, "resolution '8k'"),
        ({"num_images": 5}, "Number of images"),
    ],
)
async def test_bad_remix_input_is_refused_before_anything_is_sent(
    playground, tmp_path: Path, change: dict, words: str
) -> None:
    arguments = {"prompt": "p", "sources": [logo_png(tmp_path / "a.png")], "api_key": KEY}
    with pytest.raises(ValidationError, match=words):
        await playground.start_remix(**{**arguments, **change})
    assert not playground.server.simulator.uploads
    assert not playground.server.simulator.tasks


async def test_a_missing_kept_source_is_a_clear_refusal(playground) -> None:
    with pytest.raises(ValidationError, match="no longer on this server"):
        kept_sources(playground.store, [str(playground.store.folder / "source_1_gone.jpg")])


async def test_one_bad_source_among_good_ones_keeps_none_of_them(
    playground, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"shopping list\n" * 40)
    good = [logo_png(tmp_path / "a.png"), phone_photo(tmp_path / "b.jpg")]
    with pytest.raises(ValidationError, match=r"notes\.png is not an image"):
        await playground.start_remix(prompt="p", sources=[*good, bad], api_key=KEY)
    assert not list(playground.store.folder.glob("source_*"))
    assert not playground.server.simulator.uploads


async def test_a_kept_source_gone_when_the_run_uploads_fails_the_run_clearly(
    playground, tmp_path: Path
) -> None:
    """The sources are read where they are uploaded (the worker, if there is one)."""
    kept = await keep_sources(playground.store, [logo_png(tmp_path / "a.png")])
    kept[0].unlink()
    requests = remix_requests("p", "auto", "1k", "png", count=1)
    run = await playground.start_requests(requests, api_key=KEY, kind="remix", sources=kept)
    await run.finished()
    assert run.status.value == "failed"
    assert any("no longer on this server" in failure for failure in run.failures())
    assert not playground.server.simulator.tasks


def test_an_error_a_run_keeps_quotes_no_url_query() -> None:
    said = RunAPIError(
        "RunAPI refused the request: source_image_urls: "
        "'https://files.example/u/a.png?X-Amz-Signature=s3cr3t&X-Amz-Expires=3600' has expired"
    )
    kept = _without_frames(said)
    assert "s3cr3t" not in kept.message and "s3cr3t" not in str(kept)
    assert "'https://files.example/u/a.png?…' has expired" in kept.message


async def test_a_remix_entry_exports_to_a_zip_with_its_settings(playground, tmp_path) -> None:
    run = await playground.start_remix(
        prompt="golden hour", sources=[logo_png(tmp_path / "a.png")], api_key=KEY
    )
    await run.finished()
    entry = await hist.finished_entry(run, playground.store)
    (item,) = hist.export_items([entry])
    assert (item.settings.model, item.settings.source_images) == (REMIX_MODEL, 1)
    assert item.settings.output_resolution == "1k" and item.settings.seed is None
    archive = await build_zip_async(
        [item], tmp_path, title="remix", images_root=playground.store.folder
    )
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
    assert names == ["01_imagen-4-pro-remix_auto_golden-hour.png", "manifest.json"]
