"""Runs, history entries and the image folder, against a real simulator over loopback.

No browser here: `RunRegistry` runs real tasks on a `SimulatorServer`, history entries
are built from those runs, and `ImageStore` is given real files, real symlinks and
forged paths. The browser side of the same feature is in `tests/test_history.py`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import gc
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import httpx
import pytest
from PIL import Image

from runapi_ui.runapi.client import GenerationRequest, Phase, RunAPIClient
from runapi_ui.runapi.simulator import SimulatorServer, drawable, placeholder_font
from runapi_ui.runs import history as hist
from runapi_ui.runs.access import Backend, KeySource
from runapi_ui.runs.registry import Run, RunRegistry, RunStatus
from runapi_ui.storage.images import PLACEHOLDER_FRAME, PLACEHOLDER_LABEL, ImageStore
from runapi_ui.translations import ENGLISH, TRADITIONAL
from tests.conftest import FAST_RETRY_SECONDS, fast_durations

KEY = "sk-runs-5e1f0a9d77"
STEADY_POLL_SECONDS = 0.2  # what fast_durations() makes a client poll at
THUMBNAIL_MAX_SIDE = 256  # the "small thumbnail (e.g. 256 px WebP)"
THUMBNAIL_MAX_BYTES = 16_000  # each; four of them must fit many times in ~5 MB


def registry(store: ImageStore, **kwargs: Any) -> RunRegistry:
    """A registry whose clients poll fast and retry fast, as the tests' clients do."""

    def client_for(backend: Backend) -> RunAPIClient:
        return RunAPIClient(
            api_key=backend.api_key,
            base_url=backend.base_url,
            durations=fast_durations(),
            retry_base_delay=FAST_RETRY_SECONDS,
            deadline=20.0,
        )

    return RunRegistry(store, client_for, **kwargs)


def requests_for(count: int, *, model: str = "imagen-4-fast", seed: int = 40) -> list:
    return [
        GenerationRequest(prompt="a kite over the dunes", model=model, aspect_ratio="16:9", seed=s)
        for s in range(seed, seed + count)
    ]


def backend(server: SimulatorServer) -> Backend:
    return Backend(KEY, server.url, KeySource.VISITOR)


def creates(server: SimulatorServer) -> int:
    return sum(1 for r in server.simulator.requests if r.method == "POST")


def status_reads(server: SimulatorServer) -> int:
    return sum(
        1 for r in server.simulator.requests if r.method == "GET" and "/files/" not in r.path
    )


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


@pytest.fixture
def sim(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    """Tasks take a few tenths of a second: long enough to be watched, short for a test."""
    return make_simulator(time_scale=0.05, api_keys=frozenset({KEY}))


async def finished_run(store: ImageStore, sim: SimulatorServer, count: int = 2) -> Run:
    run = registry(store).start(requests_for(count), backend(sim))
    return await asyncio.wait_for(run.finished(), 20)


# --- the run registry -------------------------------------------------------------------


async def test_a_run_finishes_after_whoever_watched_it_went_away(store, sim) -> None:
    runs = registry(store)

    async def page_event() -> Run:
        """Starts a run, sees its first update, and ends: a page reload closes the watcher."""
        run = runs.start(requests_for(3), backend(sim))
        watcher = run.updates()
        await anext(watcher)
        await watcher.aclose()  # what Gradio does to a generator at a reload
        return run

    run = await asyncio.create_task(page_event())
    assert not run.is_finished, "the run must still be going when its watcher is gone"

    assert await asyncio.wait_for(run.finished(), 20) is run
    assert run.status is RunStatus.DONE and len(run.images) == 3
    assert sorted(image.seed for image in run.images) == [40, 41, 42]
    assert all(image.path.is_file() and image.path.parent == store.folder for image in run.images)
    assert runs.get(run.id) is run, "a visitor who comes back finds the run by its id"
    assert creates(sim) == 3


async def test_closing_the_watcher_of_milestones_does_not_stop_the_run(store, sim) -> None:
    run = registry(store).start(requests_for(2), backend(sim))
    milestones = run.milestones()
    await anext(milestones)  # a task was made, or an image landed
    await milestones.aclose()
    await asyncio.wait_for(run.finished(), 20)
    assert run.status is RunStatus.DONE and not run.stopped and len(run.images) == 2


async def test_stop_cancels_the_run_and_no_status_is_read_after(make_simulator, store) -> None:
    sim = make_simulator(faults="stuck", api_keys=frozenset({KEY}))
    run = registry(store).start(requests_for(2), backend(sim))
    while status_reads(sim) < 4:  # noqa: ASYNC110 - the simulator is another thread: look
        await asyncio.sleep(0.05)
    assert run.backend is not None, "a running run holds its key"

    run.cancel()
    await asyncio.wait_for(run.finished(), 5)
    seen = len(sim.simulator.requests)
    await asyncio.sleep(5 * STEADY_POLL_SECONDS)  # five polls would have come by now
    assert len(sim.simulator.requests) == seen, "polling went on after Stop"
    assert run.status is RunStatus.STOPPED and run.stopped
    assert run.backend is None, "a stopped run still holds the visitor's key"


async def test_cancelling_the_watcher_is_stop(make_simulator, store) -> None:
    """Stop reaches a run as the cancel of the event that watches it."""
    sim = make_simulator(faults="stuck", api_keys=frozenset({KEY}))
    run = registry(store).start(requests_for(1), backend(sim))

    async def watch() -> None:
        async for _ in run.milestones():
            pass

    watcher = asyncio.create_task(watch())
    while status_reads(sim) < 2:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    watcher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watcher
    # The watcher's end waits for the run's: once Stop returns, nothing of it still polls.
    assert run.is_finished and run._task is not None and run._task.done()
    assert run.status is RunStatus.STOPPED


async def test_a_finished_run_lets_go_of_the_key(store, sim) -> None:
    run = registry(store).start(requests_for(1), backend(sim))
    assert run.backend is not None and run.backend.api_key == KEY
    await asyncio.wait_for(run.finished(), 20)
    assert run.backend is None
    assert KEY not in repr(run)


class SlowToClose:
    """Runs whose clients take until `may_close` is set to close their connection."""

    def __init__(self, store: ImageStore) -> None:
        self.closing = asyncio.Event()
        self.may_close = asyncio.Event()
        self.runs = RunRegistry(store, self.client_for)

    def client_for(self, backend: Backend) -> RunAPIClient:
        closing, may_close = self.closing, self.may_close

        class Client(RunAPIClient):
            async def aclose(self) -> None:
                closing.set()
                await may_close.wait()
                await super().aclose()

        return Client(
            api_key=backend.api_key, base_url=backend.base_url, durations=fast_durations()
        )


async def test_watchers_hear_of_the_end_before_the_connection_closes(store, sim) -> None:
    """Closing a run's client waits on its connection: nobody watching should."""
    slow = SlowToClose(store)
    run = slow.runs.start(requests_for(1), backend(sim))
    await asyncio.wait_for(run.finished(), 20)
    assert run.status is RunStatus.DONE and len(run.images) == 1
    await asyncio.wait_for(slow.closing.wait(), 5)
    assert not run._task.done(), "the client is still closing: the end came first"
    slow.may_close.set()
    await asyncio.wait_for(run._task, 5)


async def test_a_stop_that_arrives_after_the_end_changes_nothing(store, sim) -> None:
    """A Stop that crossed the end on its way (the run's connection still closing) must
    not turn a done run into a stopped one."""
    slow = SlowToClose(store)
    run = slow.runs.start(requests_for(2), backend(sim))
    await asyncio.wait_for(run.finished(), 20)
    await asyncio.wait_for(slow.closing.wait(), 5)
    run.cancel()
    slow.may_close.set()
    await asyncio.wait_for(asyncio.gather(run._task, return_exceptions=True), 5)
    assert run.status is RunStatus.DONE and not run.stopped and len(run.images) == 2


async def test_a_job_looks_done_only_with_its_image_or_its_error(make_simulator, store) -> None:
    """The client's "completed" comes before the image is saved: a watcher must not see
    a finished job without its image (the bar would say "Finishing · 0 of 1")."""
    server = make_simulator(time_scale=0.05, api_keys=frozenset({KEY}), faults="task_fail*1")
    run = registry(store).start(requests_for(3), backend(server))
    seen = []
    async for current in run.updates(tick=None):
        seen += [
            (job.phase, job.image, job.error)
            for job in current.jobs
            if job.phase in (Phase.COMPLETED, Phase.FAILED)
        ]
    assert run.status is RunStatus.PARTIAL and len(run.images) == 2
    assert seen and all(image or error for _, image, error in seen), seen


def reachable(root: object) -> Iterator[object]:
    """Every object `root` keeps alive, through the references the garbage collector sees.
    Modules, classes, functions and event loops are not followed: they reach the whole
    program, not what this object holds on to."""
    seen, todo = {id(root)}, [root]
    while todo:
        obj = todo.pop()
        yield obj
        if isinstance(obj, ModuleType | type | FunctionType | asyncio.AbstractEventLoop):
            continue
        for ref in gc.get_referents(obj):
            if id(ref) not in seen:
                seen.add(id(ref))
                todo.append(ref)


@pytest.mark.parametrize(
    "faults",
    ["", "image_garbage", "image_truncated", "image_bomb", "task_fail", "server_error@status*9"],
)
async def test_a_finished_run_holds_neither_the_key_nor_what_it_downloaded(
    make_simulator, store, faults
) -> None:
    """A finished run is kept for an hour (a visitor may come back for it); what it holds
    then is its outcome, not its key, its client or the bytes of a broken image (a stored
    error's traceback would keep all three)."""
    server = make_simulator(api_keys=frozenset({KEY}), faults=faults)
    run = registry(store).start(requests_for(1), backend(server))
    await asyncio.wait_for(run.finished(), 20)
    assert run.status is (RunStatus.DONE if not faults else RunStatus.FAILED)
    held = list(reachable(run))
    assert not [o for o in held if isinstance(o, str) and KEY in o]
    assert not [o for o in held if isinstance(o, RunAPIClient | httpx.Response)]
    assert sum(len(o) for o in held if isinstance(o, bytes | bytearray)) < 1024


async def test_runs_nobody_came_back_for_are_forgotten_after_keep_seconds(store, sim) -> None:
    runs = registry(store, keep_seconds=60.0)
    pair = [runs.start(requests_for(1), backend(sim)) for _ in range(2)]
    for run in pair:
        await asyncio.wait_for(run.finished(), 20)
    still_running = runs.start(requests_for(1), backend(sim))

    old, recent = sorted(pair, key=lambda run: run.ended or 0.0)
    assert old.ended is not None
    old.ended -= 61.0  # the first to end, as if it ended a minute ago
    runs.sweep()
    assert runs.get(old.id) is None
    assert runs.get(recent.id) is recent and runs.get(still_running.id) is still_running
    await asyncio.wait_for(still_running.finished(), 20)


async def test_finished_runs_are_bounded_in_number_oldest_first(store, sim) -> None:
    runs = registry(store, keep_seconds=3600.0, max_finished=2)
    started = []
    for _ in range(4):
        run = runs.start(requests_for(1), backend(sim))
        await asyncio.wait_for(run.finished(), 20)
        started.append(run)
    runs.sweep()
    assert len(runs) == 2
    assert [runs.get(run.id) for run in started] == [None, None, started[2], started[3]]


async def test_resuming_by_task_id_fetches_the_images_and_creates_nothing(store, sim) -> None:
    """Wait again: tasks made by a run this server forgot are waited on by their ids."""
    first = registry(store).start(requests_for(2), backend(sim))
    while len(sim.simulator.tasks) < 2:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    task_ids = list(sim.simulator.tasks)
    first.cancel()  # the server "restarted": nobody waits on those tasks any more
    await asyncio.wait_for(first.finished(), 5)
    made = creates(sim)

    again = registry(store).start(requests_for(2), backend(sim), task_ids=task_ids)
    await asyncio.wait_for(again.finished(), 20)
    assert [job.error for job in again.jobs] == [None, None]
    assert again.status is RunStatus.DONE and len(again.images) == 2
    assert sorted(image.task_id for image in again.images) == sorted(task_ids)
    assert creates(sim) == made, "waiting again created a new (paid) task"


# --- history entries ------------------------------------------------------------------


async def test_an_entry_records_the_run_and_never_the_key(store, sim) -> None:
    run = await finished_run(store, sim, count=2)
    entry = await hist.finished_entry(run, store)
    assert entry["run"] == run.id and entry["status"] == "done"
    assert entry["prompt"] == "a kite over the dunes" and entry["num_images"] == 2
    assert [job["seed"] for job in entry["jobs"]] == [40, 41]
    assert [job["task_id"] for job in entry["jobs"]] == run.task_ids
    assert entry["cost"] == pytest.approx(0.08) and entry["duration"] is not None
    assert KEY not in json.dumps(entry)
    assert hist.clean([entry]) == [entry], "what we write, we read back"
    assert hist.requests_of(entry) == run.requests, "Run again sends the same requests"


async def test_previews_are_small_webp_files_of_ours_and_the_tiles_show_them(store, sim) -> None:
    run = await finished_run(store, sim, count=2)
    entry = await hist.finished_entry(run, store)
    previews = [Path(job["image"]["thumb"]) for job in entry["jobs"]]
    assert len(set(previews)) == 2
    for preview in previews:
        assert store.resolve(str(preview)) == preview, "a file of ours, served as one"
        assert re.fullmatch(r"preview_0_[A-Za-z0-9_-]{22,}\.webp", preview.name), preview.name
        data = preview.read_bytes()
        assert len(data) <= THUMBNAIL_MAX_BYTES, len(data)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "WEBP"
            assert max(image.size) <= THUMBNAIL_MAX_SIDE
            # The shape of the image, not a square crop: 16:9 stays wide.
            assert image.width > image.height
    # The history keeps names, not pictures: a run of 2 is a couple of KB of JSON.
    assert "data:" not in json.dumps(entry) and len(json.dumps(entry)) < 2500
    assert hist.cover(entry, store) == str(previews[0]), "a tile is its first preview"
    assert hist.gallery_items(entry, store)[0][0] == entry["jobs"][0]["image"]["path"]


def with_inline_previews(entry: hist.Entry) -> hist.Entry:
    """The entry as an earlier version stored it: its previews inline, as data URLs."""
    inline = copy.deepcopy(entry)
    for job in inline["jobs"]:
        webp = Path(job["image"]["thumb"]).read_bytes()
        job["image"]["thumb"] = "data:image/webp;base64," + base64.b64encode(webp).decode()
    return inline


def same_bytes(one: Path | None, other: str) -> bool:
    return one is not None and one.read_bytes() == Path(other).read_bytes()


async def test_an_inline_preview_of_an_earlier_version_moves_to_a_file(store, sim) -> None:
    entry = await hist.finished_entry(await finished_run(store, sim, count=2), store)
    inline = with_inline_previews(entry)
    forged = copy.deepcopy(inline)
    forged["id"] = "forged"
    forged["jobs"][1]["image"]["thumb"] = "data:image/webp;base64,!!!not base64!!!"

    moved, kept, refused = hist.with_previews_on_disk([inline, entry, forged], store)
    assert kept is entry, "an entry without inline previews is left as it is"
    for before, after in zip(entry["jobs"], moved["jobs"], strict=True):
        assert same_bytes(store.resolve(after["image"]["thumb"]), before["image"]["thumb"])
    assert {**moved, "jobs": None} == {**inline, "jobs": None}
    assert store.resolve(refused["jobs"][0]["image"]["thumb"]) is not None
    assert refused["jobs"][1]["image"]["thumb"] == "", "a forged preview is dropped"


def lose_files(entry: hist.Entry) -> None:
    """As on a Space restarted on a fresh disk: the entry's images and previews gone."""
    for job in entry["jobs"]:
        Path(job["image"]["path"]).unlink()
        Path(job["image"]["thumb"]).unlink()


async def test_an_entry_whose_files_are_all_gone_says_so(store, sim) -> None:
    entry = await hist.finished_entry(await finished_run(store, sim, count=2), store)
    lose_files(entry)
    items = hist.gallery_items(entry, store)
    assert len(items) == 2
    for picture, caption in items:
        assert folder_of(picture) == store.folder and picture == hist.cover(entry, store)
        assert caption.endswith("no longer on this server: Run again remakes it"), caption
    with Image.open(items[0][0]) as placeholder:
        assert placeholder.size == (384, 384)


def test_a_tile_without_an_image_says_why_in_the_pages_language(store: ImageStore) -> None:
    """The picture of a running run's tile says "running" in the page's words, drawn with
    the font that has them: a Chinese page's tile is not English, nor empty boxes."""
    entry = {"status": "running", "jobs": [{"image": None}]}
    english, chinese = (hist.cover(entry, store, language) for language in (ENGLISH, TRADITIONAL))
    assert english != chinese and {folder_of(english), folder_of(chinese)} == {store.folder}
    words = hist.status_words("running", TRADITIONAL)
    font = placeholder_font(34)
    assert drawable(font, words) == words, "apt-get install -y fonts-noto-cjk"
    for path in (english, chinese):
        with Image.open(path) as tile:
            alpha = tile.getchannel("A")
            # Between the frame and the label, the page's own colour shows: light or dark.
            assert alpha.getpixel((40, 192)) == 0 and alpha.getpixel((192, 40)) == 0
            assert alpha.getpixel((2, 2)) == 0, "the corners outside the frame too"
            label = tile.crop((40, 150, 344, 234)).convert("RGB").getcolors(384 * 384)
            assert {(255, 255, 255), PLACEHOLDER_LABEL} <= {color for _, color in label}, (
                "white words on the grey label"
            )
    assert hist.cover(entry, store, TRADITIONAL) == chinese, "drawn once, then reused"


def contrast(first: tuple[int, ...], second: tuple[int, ...]) -> float:
    """WCAG's contrast ratio of two sRGB colours."""

    def luminance(color: tuple[int, ...]) -> float:
        linear = [
            (c / 255 / 12.92) if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in color
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(first[:3]), luminance(second[:3])), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_sweep_removes_old_images_and_earlier_looks_tiles_and_nothing_else(
    store: ImageStore,
) -> None:
    eight_days_ago = time.time() - 8 * 86400
    old, fresh = store.keep(b"old", "imagen-4_1", "png"), store.keep(b"new", "imagen-4_2", "png")
    not_ours = store.folder / "notes.txt"
    not_ours.write_text("a file someone put here")
    for path in (old, not_ours):
        os.utime(path, (eight_days_ago, eight_days_ago))
    tile = Path(hist.cover({"status": "failed", "jobs": [{"image": None}]}, store))
    earlier_tiles = [
        store.folder / "placeholder-running.png",
        store.folder / "placeholder-0a1b.png",
    ]
    for path in earlier_tiles:
        path.write_bytes(b"an earlier look")
    assert store.sweep() == 3
    assert not old.exists() and not any(path.exists() for path in earlier_tiles)
    assert fresh.exists() and not_ours.exists() and tile.exists()


def test_a_tile_without_an_image_reads_on_a_light_page_and_a_dark_one() -> None:
    """The words are white on the label's grey (WCAG's 4.5:1 for text), and the frame
    stands out (3:1) from a white block and from the dark theme's blocks (neutral 800)."""
    assert contrast((255, 255, 255), PLACEHOLDER_LABEL) >= 4.5
    for block in ((255, 255, 255), (0x1F, 0x29, 0x37)):
        assert contrast(PLACEHOLDER_FRAME, block) >= 3, block


def entry_like(template: hist.Entry, number: int, *, thumb_bytes: int = 0) -> hist.Entry:
    entry = copy.deepcopy(template)
    entry["id"] = entry["run"] = f"run-{number}"
    entry["prompt"] = f"entry number {number}"
    entry["created"] = template["created"] + number  # later numbers are newer runs
    if thumb_bytes:
        for job in entry["jobs"]:
            job["image"]["thumb"] = "data:image/webp;base64," + "A" * thumb_bytes
    return entry


async def test_history_keeps_the_newest_entries_and_drops_the_oldest(store, sim) -> None:
    template = await hist.finished_entry(await finished_run(store, sim, count=1), store)
    entries: list[hist.Entry] = []
    dropped_total = 0
    for number in range(hist.MAX_ENTRIES + 5):  # oldest first, as they happen
        entries, dropped = hist.merge(entries, entry_like(template, number))
        dropped_total += dropped
    assert len(entries) == hist.MAX_ENTRIES and dropped_total == 5
    assert entries[0]["prompt"] == f"entry number {hist.MAX_ENTRIES + 4}", "newest first"
    assert entries[-1]["prompt"] == "entry number 5", "the five oldest went"


async def test_history_is_bounded_in_bytes_too(store, sim) -> None:
    template = await hist.finished_entry(await finished_run(store, sim, count=1), store)
    big = hist.MAX_BYTES // 8  # eight such entries are just over the bound
    entries: list[hist.Entry] = []
    for number in range(12):
        entries, _ = hist.merge(entries, entry_like(template, number, thumb_bytes=big))
    assert len(json.dumps(entries)) <= hist.MAX_BYTES
    assert 1 < len(entries) < 12
    kept = [entry["prompt"] for entry in entries]
    assert kept == [f"entry number {n}" for n in range(11, 11 - len(entries), -1)]


async def test_updating_an_entry_replaces_it_where_it_stands_in_time(store, sim) -> None:
    """A run that ends after a newer one started stays below it: one entry per run."""
    template = await hist.finished_entry(await finished_run(store, sim, count=1), store)
    entries, _ = hist.merge([], entry_like(template, 1))
    entries, _ = hist.merge(entries, entry_like(template, 2))
    update = entry_like(template, 1)
    update["status"] = "partly failed"
    entries, dropped = hist.merge(entries, update)
    assert dropped == 0 and [e["id"] for e in entries] == ["run-2", "run-1"]
    assert [e["status"] for e in entries] == ["done", "partly failed"]


def _broken(entry: hist.Entry, change: Callable[[hist.Entry], object]) -> hist.Entry:
    broken = copy.deepcopy(entry)
    change(broken)
    return broken


MALFORMED: dict[str, Callable[[hist.Entry], object]] = {
    "no id": lambda e: e.pop("id"),
    "id not text": lambda e: e.update(id=7),
    "prompt not text": lambda e: e.update(prompt=["a", "b"]),
    "created not a number": lambda e: e.update(created="yesterday"),
    "demo not a bool": lambda e: e.update(demo="no"),
    "cost not a number": lambda e: e.update(cost="free"),
    "count not a number": lambda e: e.update(num_images="2"),
    "negative prompt not text": lambda e: e.update(negative_prompt={"x": 1}),
    "duration not a number": lambda e: e.update(duration="long"),
    "unknown kind": lambda e: e.update(kind="<script>"),
    "jobs not a list": lambda e: e.update(jobs="none"),
    "no jobs": lambda e: e.update(jobs=[]),
    "five jobs": lambda e: e.update(jobs=e["jobs"] * 5),
    "unknown model": lambda e: e["jobs"][0].update(model="imagen-9"),
    "negative seed": lambda e: e["jobs"][0].update(seed=-1),
    "seed too large": lambda e: e["jobs"][0].update(seed=2**31),
    "seed not a number": lambda e: e["jobs"][0].update(seed="42"),
    "image not a record": lambda e: e["jobs"][0].update(image="/etc/passwd"),
    "job not a record": lambda e: e.update(jobs=["imagen-4"]),
}


async def test_clean_keeps_only_well_formed_entries(store, sim) -> None:
    good = await hist.finished_entry(await finished_run(store, sim, count=1), store)
    forged = [_broken(good, change) for change in MALFORMED.values()]
    assert hist.clean([*forged, good, None, "text", 3]) == [good]
    for name, entry in zip(MALFORMED, forged, strict=True):
        assert hist.clean([entry]) == [], f"a history entry with {name} was accepted"
    for not_a_list in (None, "[]", {"entries": [good]}, 42):
        assert hist.clean(not_a_list) == []
    assert len(hist.clean([good] * (hist.MAX_ENTRIES + 3))) == hist.MAX_ENTRIES


async def test_the_browser_keeps_the_history_as_one_json_text(store, sim) -> None:
    """One text, not a list: Gradio's frontend copies a list's every string and number at
    each status change of any event; an earlier version's list is still read."""
    good = await hist.finished_entry(await finished_run(store, sim, count=2), store)
    text = hist.for_browser([good])
    assert isinstance(text, str) and hist.clean(text) == [good]
    assert hist.clean([good]) == [good], "a history stored as a list, as before"
    for not_ours in ("", "[", "{}", '"[]"', "[" + " " * (2 * hist.MAX_BYTES) + "]"):
        assert hist.clean(not_ours) == [], not_ours[:20]


# --- paths that come back from the browser --------------------------------------------


def our_style_name(tag: str = "a") -> str:
    """A name of the shape our own files have, for files that are not ours."""
    return f"imagen-4_7_{tag * 22}.png"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the image folder, with a file named like one of ours."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / our_style_name()).write_bytes(b"not yours")
    return folder


def forged_paths(store: ImageStore, outside: Path) -> dict[str, str]:
    """Every way a visitor's edited history might point at a file that is not ours."""
    link = store.folder / our_style_name("l")
    link.symlink_to(outside / our_style_name())
    (store.folder / our_style_name("d")).mkdir()
    return {
        "/etc/passwd": "/etc/passwd",
        "a file outside named like ours": str(outside / our_style_name()),
        "a ../ climb out of the folder": str(store.folder / ".." / "elsewhere" / our_style_name()),
        "a symlink inside pointing outside": str(link),
        "a directory named like ours": str(store.folder / our_style_name("d")),
        "a relative name": our_style_name(),
        "a file:// URL": (outside / our_style_name()).as_uri(),
        "a null byte": str(store.folder / our_style_name()) + "\x00.png",
        "proc of this process": f"/proc/{os.getpid()}/environ",
    }


async def test_resolve_serves_our_files_and_nothing_else(store, sim, outside) -> None:
    run = await finished_run(store, sim, count=1)
    ours = run.images[0].path
    assert store.resolve(str(ours)) == ours
    for name, forged in forged_paths(store, outside).items():
        assert store.resolve(forged) is None, f"{name} would be served: {forged!r}"
    for not_text in (None, 42, ["/etc/passwd"], {"path": str(ours)}, ""):
        assert store.resolve(not_text) is None


def folder_of(path: str) -> Path:
    """The folder the file really is in, links followed."""
    return Path(path).resolve().parent


async def test_a_forged_entry_shows_only_files_from_the_image_folder(store, sim, outside) -> None:
    entry = await hist.finished_entry(await finished_run(store, sim, count=1), store)
    for name, forged in forged_paths(store, outside).items():
        tampered = copy.deepcopy(entry)
        tampered["jobs"][0]["image"]["path"] = forged
        (entry_read_back,) = hist.clean([tampered])
        items = hist.gallery_items(entry_read_back, store)
        # The stored thumbnail stands in, marked as such; the forged file never shows.
        assert len(items) == 1, name
        shown, caption = items[0]
        assert folder_of(shown) == store.folder, f"{name}: {shown}"
        assert Path(shown).suffix == ".webp" and "preview only" in caption, name
    assert hist.gallery_items(entry, store)[0][0] == entry["jobs"][0]["image"]["path"]


async def test_a_forged_thumbnail_is_refused(store) -> None:
    png = io.BytesIO()
    Image.new("RGB", (64, 64)).save(png, format="PNG")
    huge = io.BytesIO()
    Image.new("RGB", (2000, 2000)).save(huge, format="WEBP")
    for forged in (
        "data:image/webp;base64," + base64.b64encode(png.getvalue()).decode(),  # not a WebP
        "data:image/webp;base64," + base64.b64encode(huge.getvalue()).decode(),  # not small
        "data:image/webp;base64,!!!not base64!!!",
        "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
        "/etc/passwd",
        None,
    ):
        assert store.thumbnail_file(forged) is None, str(forged)[:60]
    assert sorted(p.suffix for p in store.folder.iterdir()) == [], "a refused thumbnail was kept"
