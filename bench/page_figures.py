"""Figure 6: the page in Chromium, with several runs in one tab and a full history.

The playground runs in a child process (`bench.appserver`) with every visitor typing a
key; RunAPI is a simulator in this process, so each task's finish is known exactly
(`created_at + duration`, every task 2 s); Debian's Chromium is driven by Playwright.

a. A wave of 4 runs of 4 images in one tab against one run of 4, turns alternating,
   each turn in a fresh browser profile (an empty history, so no turn writes a bigger
   history than the other kind): the app's CPU seconds per image (the app process with
   its RunAPI worker) and each image's lateness, from its task's finish to the moment
   its file first appears in the page (the results or a history tile), recorded in the
   page by a MutationObserver. The results show one run (the last started), and a
   history tile shows a run's first image: in a wave, the other runs' other images never
   appear on their own, so a wave has fewer lateness samples per image made.
b. Page load with a full history (60 runs of 4 images, previews of textured simulator
   pictures, their full images' files gone) against an empty one: navigation start
   until the prompt can be typed in and the history's first page of tiles and its count
   are shown, turns alternating. The history is stored as an earlier version kept it,
   previews inline (1.45 MB of JSON, near its 1.5 MB bound); its first load, unmeasured,
   moves them to the server and stores the history again without them, as for any
   visitor's. Beside it, the bytes the load's answer streamed back and the history's as
   stored: unlike the milliseconds, they do not depend on the machine.
c. A search over that full history: from typing into the search box until the count
   line shows the new count (a round trip: the browser sends the search box and the two
   filters).
"""

from __future__ import annotations

import base64
import io
import json
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from runapi_ui.page.browser_store import seal, unseal
from runapi_ui.page.history_view import HistoryView
from runapi_ui.page.ui import HISTORY_STORAGE_KEY
from runapi_ui.runapi.catalog import MODELS
from runapi_ui.runapi.simulator import SimTask, SimulatorConfig, SimulatorServer, render_image
from runapi_ui.runs import history as hist
from runapi_ui.storage.images import thumbnail_webp

from .app_figures import TASK_SECONDS, log
from .processes import CHROMIUM, CHROMIUM_FLAGS, AppProcess, cpu_seconds
from .stats import median_ratio, percentile, summarize

MODEL = "imagen-4"  # the page's default model: nothing to click
IMAGES_PER_RUN = 4
WAVE_RUNS = 4  # the tab's default caps: 4 runs, 16 images
WARM_UP_WAVES = 2
VIEWPORT = {"width": 1280, "height": 1000}
WAIT_MS = 60_000  # for a run or a page to land: generous, never a measure of speed
HISTORY_SECRET = "imagen-playground-history"  # Settings' default, as appserver runs it
SUBJECTS = [  # the full history's prompts, in turn; a search for one matches a sixth
    "a lighthouse at dusk over a stormy sea",
    "a red fox asleep in fresh snow",
    "a tea house in Kyoto in the rain",
    "维多利亚港的夜景, long exposure",
    "an astronaut reading in a hammock",
    "a bowl of ramen, studio light",
]
# Every image file of ours first seen in the page, by name, at the browser's epoch ms:
# new <img> elements and changed `src`s, in the results and the history alike.
ARRIVALS_JS = """
window.__arrivals = {};
const seen = (img) => {
  const name = (img.getAttribute("src") || "").split("/").pop();
  if (/^imagen-4[a-z-]*_\\d+_/.test(name) && !(name in window.__arrivals))
    window.__arrivals[name] = performance.timeOrigin + performance.now();
};
new MutationObserver((records) => {
  for (const record of records) {
    if (record.type === "attributes") { if (record.target.tagName === "IMG") seen(record.target); }
    else for (const node of record.addedNodes) {
      if (node.nodeType !== 1) continue;
      if (node.tagName === "IMG") seen(node);
      node.querySelectorAll("img").forEach(seen);
    }
  }
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["src"]});
"""
# Until the page can be used: the prompt enabled, the history's tiles and count shown
# (the count line is empty until the page's load event has answered). Returns the ms
# since navigation start.
LOADED_JS = """([tiles, listing]) => {
  const prompt = document.querySelector('textarea[placeholder^="Describe the image"]');
  const shown = document.querySelectorAll("#history .thumbnail-item").length;
  const count = document.querySelector("#history-listing");
  return prompt && !prompt.disabled && shown === tiles && count
    && count.textContent.trim() === listing ? performance.now() : false;
}"""
# Types `query` into the search box as a person would (an input event), then waits for
# the count line to say `listing`; the ms in between.
SEARCH_JS = """async ([query, listing]) => {
  const box = document.querySelector("#history-search textarea, #history-search input");
  const count = document.querySelector("#history-listing");
  const setValue = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(box), "value").set;
  const started = performance.now();
  setValue.call(box, query);
  box.dispatchEvent(new Event("input", {bubbles: true}));
  while (count.textContent.trim() !== listing)
    await new Promise((resolve) => requestAnimationFrame(resolve));
  return performance.now() - started;
}"""
IMAGE_NAME = re.compile(r"^imagen-4[a-z-]*_(\d+)_")


@dataclass(frozen=True)
class Turn:
    """One turn of runs: the app's CPU seconds per image, each shown image's lateness."""

    cpu_per_image: float
    lateness: list[float]


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def store_history(page: Page, history: list[hist.Entry]) -> None:
    """Seal `history` into the page's localStorage, once the page's own load has written
    its empty one (it would overwrite ours); it counts from the next load."""
    expect(page.locator("#history-listing")).to_have_text("0 runs", timeout=WAIT_MS)
    page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)",
        [HISTORY_STORAGE_KEY, seal(history, HISTORY_SECRET)],
    )


@contextmanager
def opened(browser: Browser, url: str, *, init_script: str | None = None) -> Iterator[Page]:
    """A page of `url` in a fresh browser profile (its own, empty localStorage)."""
    context = browser.new_context(viewport=VIEWPORT)
    if init_script:
        context.add_init_script(init_script)
    try:
        page = context.new_page()
        page.goto(url)
        page.get_by_label("Prompt", exact=True).wait_for(timeout=WAIT_MS)
        yield page
    finally:
        context.close()


# --- a. runs side by side ---------------------------------------------------------------


def turn(browser: Browser, app: AppProcess, sim: SimulatorServer, runs: int, key: str) -> Turn:
    """`runs` runs of 4 images started at once in one tab; measured until all have ended."""
    with opened(browser, app.url, init_script=ARRIVALS_JS) as page:
        expect(page.locator("#history-listing")).to_have_text("0 runs", timeout=WAIT_MS)
        page.get_by_label("RunAPI key").fill(key)
        page.get_by_label("Number of images").first.fill(str(IMAGES_PER_RUN))
        page.get_by_label("Number of images").first.press("Enter")
        page.wait_for_timeout(500)  # the key check and the cost line have answered
        server = psutil.Process(app.pid)
        created_after, before = time.monotonic(), cpu_seconds(server)
        for run in range(runs):
            # The same prompt and seeds for run n in every turn: the simulator draws each
            # picture once, and a seed names its task in this turn.
            page.get_by_label("Prompt", exact=True).fill(f"page benchmark, run {run}")
            page.get_by_role("textbox", name=re.compile(r"^Seed\b")).fill(str(_seed(run)))
            page.get_by_role("button", name="Generate", exact=True).click()
        done = page.locator('#runs-feed .run-card[data-state="done"]')
        expect(done).to_have_count(runs, timeout=WAIT_MS)
        page.wait_for_timeout(500)  # each run's trailing key check
        cpu = cpu_seconds(server) - before
        arrivals: dict[str, float] = page.evaluate("window.__arrivals")
    made = list(sim.simulator.tasks.values())
    tasks = [task for task in made if task.created_at >= created_after]
    if len(tasks) != runs * IMAGES_PER_RUN:
        raise RuntimeError(f"{len(tasks)} tasks made for {runs} runs of {IMAGES_PER_RUN}")
    return Turn(cpu / len(tasks), lateness(arrivals, tasks))


def _seed(run: int) -> int:
    return 1000 * (run + 1)  # run n's images: seeds 1000(n+1) to 1000(n+1)+3


def lateness(arrivals: dict[str, float], tasks: list[SimTask]) -> list[float]:
    """Seconds from each shown image's task finishing to its file appearing in the page."""
    by_seed = {task.seed: task for task in tasks}
    # The simulator's clock is monotonic; the browser's, the epoch: one offset, read now.
    offset = time.time() - time.monotonic()
    late = []
    for name, at_ms in arrivals.items():
        match = IMAGE_NAME.match(name)
        task = by_seed.get(int(match.group(1))) if match else None
        if task is not None:
            late.append(at_ms / 1000 - (task.created_at + task.duration + offset))
    return late


def side_by_side(
    browser: Browser, app: AppProcess, sim: SimulatorServer, turns: int
) -> dict[str, list[Turn]]:
    """One run and a wave of 4, in turns, after two waves unmeasured: they draw every
    picture and teach the app's client the 2 s tasks (its prior for imagen-4 is 10 s:
    after one wave it still noticed a finish 1.6 s late, after two 0.2-0.3 s)."""
    for n in range(WARM_UP_WAVES):
        turn(browser, app, sim, WAVE_RUNS, f"sk-page-warm-up-{n}")
    result: dict[str, list[Turn]] = {"one": [], "four": []}
    for n in range(turns):
        result["one"].append(turn(browser, app, sim, 1, f"sk-page-one-{n}"))
        result["four"].append(turn(browser, app, sim, WAVE_RUNS, f"sk-page-four-{n}"))
        log(
            f"turn {n + 1}: CPU per image {result['one'][-1].cpu_per_image * 1000:.0f} ms "
            f"alone, {result['four'][-1].cpu_per_image * 1000:.0f} ms in a wave of 4"
        )
    return result


# --- b. and c. a full history --------------------------------------------------------------


def full_history(pictures: int) -> list[hist.Entry]:
    """60 finished runs of 4 images, newest first, with real previews, inline as an
    earlier version kept them (of `pictures` distinct textured pictures: a photo's
    preview weighs what these do, the simulator's flat drawings a third of it), their
    images' files no longer on the server."""
    thumbs = [_photo_like_thumbnail(n) for n in range(pictures)]
    now = time.time()
    entries = []
    for i in range(hist.MAX_ENTRIES):
        seeds = [10 * i + k for k in range(IMAGES_PER_RUN)]
        entries.append(
            {
                "id": uuid.uuid4().hex,
                "run": uuid.uuid4().hex,
                "kind": "generate",
                "created": now - 600 * (i + 1),
                "prompt": f"{SUBJECTS[i % len(SUBJECTS)]}, take {i}",
                "negative_prompt": "",
                "model": MODEL,
                "aspect_ratio": "1:1",
                "num_images": IMAGES_PER_RUN,
                "demo": False,
                "status": "done",
                "message": "",
                "duration": 9.4,
                "cost": round(IMAGES_PER_RUN * MODELS[MODEL].price_usd, 2),
                "jobs": [
                    {
                        "model": MODEL,
                        "aspect_ratio": "1:1",
                        "seed": seed,
                        "task_id": str(uuid.uuid4()),
                        "seconds": 9.1,
                        "error": "",
                        "waitable": True,
                        "image": {
                            # Our own kind of name, in a folder that is gone.
                            "path": f"/tmp/expired/{MODEL}_{seed}_{uuid.uuid4().hex}.png",
                            "thumb": thumbs[(4 * i + k) % len(thumbs)],
                            "width": 1024,
                            "height": 1024,
                        },
                    }
                    for k, seed in enumerate(seeds)
                ],
            }
        )
    if hist.bounded(entries) != entries:
        raise RuntimeError("the benchmark's full history is past the history's bounds")
    return entries


def _photo_like_thumbnail(n: int) -> str:
    """The app's preview of a simulator picture with grain that survives the downscale,
    as a data URL."""
    picture = Image.open(io.BytesIO(render_image(SUBJECTS[n % len(SUBJECTS)], MODEL, "1:1", n)))
    grain = Image.merge("RGB", [Image.effect_noise((192, 192), 60) for _ in range(3)])
    textured = Image.blend(picture.convert("RGB"), grain.resize(picture.size), 0.24)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "picture.png"
        textured.save(path)
        webp = thumbnail_webp(path)
    return "data:image/webp;base64," + base64.b64encode(webp).decode("ascii")


@dataclass(frozen=True)
class Load:
    ms: float  # from navigation start until the page is usable
    answer_bytes: int  # what the page's load event streamed back (the queue's messages)


def reload(page: Page, history: list[hist.Entry]) -> Load:
    """Load the page again, `history` stored (the page's own load writes it back as is)."""
    page.reload(wait_until="commit")
    listed, _, _ = HistoryView().listed(history)
    expected = [len(listed), HistoryView().describe(history)]
    ms = page.wait_for_function(LOADED_JS, arg=expected, timeout=WAIT_MS).json_value()
    answers = page.evaluate(
        """() => performance.getEntriesByType("resource")
            .filter((e) => e.name.includes("/gradio_api/queue/data"))
            .reduce((sum, e) => sum + e.encodedBodySize, 0)"""
    )
    return Load(ms, answers)


def page_loads(
    browser: Browser, url: str, history: list[hist.Entry], turns: int
) -> tuple[dict[str, list[Load]], int]:
    """Two tabs of their own, one with the full history stored and one without, each
    reloaded in turn (the browser's cache warm for both); and the bytes of JSON of the
    full history as the page then stores it."""
    result: dict[str, list[Load]] = {"empty": [], "full": []}
    with opened(browser, url) as empty, opened(browser, url) as full:
        store_history(full, history)
        reload(full, history)  # unmeasured: the first load of it (its previews moved)
        stored = stored_history(full)
        if len(stored) != len(history):
            raise RuntimeError(f"{len(stored)} of {len(history)} runs stored after a load")
        for _ in range(turns):
            result["empty"].append(reload(empty, []))
            result["full"].append(reload(full, history))
    return result, len(json.dumps(stored))


def stored_history(page: Page) -> list[hist.Entry]:
    """The history as the page keeps it, once its load has stored it again without
    inline previews."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        sealed = page.evaluate("(key) => localStorage.getItem(key)", HISTORY_STORAGE_KEY)
        stored = hist.clean(unseal(sealed, HISTORY_SECRET))
        if stored and "data:image" not in json.dumps(stored):
            return stored
        page.wait_for_timeout(100)
    raise RuntimeError("the page never stored its history without inline previews")


def searches(browser: Browser, url: str, history: list[hist.Entry], count: int) -> list[float]:
    """Milliseconds per search over the full history: a subject, then the empty search
    (every run again), in turn, so each one changes the count line."""
    with opened(browser, url) as page:
        store_history(page, history)
        page.reload()
        everything = HistoryView().describe(history)
        expect(page.locator("#history-listing")).to_have_text(everything, timeout=WAIT_MS)
        result = []
        for n in range(count):
            query = SUBJECTS[n // 2 % len(SUBJECTS)].split(",")[0] if n % 2 == 0 else ""
            listing = HistoryView.of(query, None, None).describe(history)
            result.append(page.evaluate(SEARCH_JS, [query, listing]))
        return result


# --- the figure ----------------------------------------------------------------------------


def measure(*, quick: bool) -> dict:
    durations = {model: (TASK_SECONDS, TASK_SECONDS) for model in MODELS}
    config = SimulatorConfig(durations=durations, starting_balance_cents=10**12, seed=3)
    with SimulatorServer(config) as sim, AppProcess(sim.url) as app, chromium() as browser:
        log("a tab with 4 runs of 4 images against one run of 4")
        runs = side_by_side(browser, app, sim, 1 if quick else 3)
        history = full_history(4 if quick else 8)
        log(f"page load with a full history ({len(json.dumps(history)) / 1e6:.2f} MB of JSON)")
        loads, stored_bytes = page_loads(browser, app.url, history, 2 if quick else 5)
        log("searching the full history")
        searched = searches(browser, app.url, history, 10 if quick else 30)
    return figures(runs, loads, searched, history, stored_bytes)


def figures(
    runs: dict[str, list[Turn]],
    loads: dict[str, list[Load]],
    searched: list[float],
    history: list[hist.Entry],
    stored_bytes: int,
) -> dict:
    late = {kind: [s for t in turns for s in t.lateness] for kind, turns in runs.items()}
    cpu = {kind: [t.cpu_per_image for t in turns] for kind, turns in runs.items()}
    return {
        "task_seconds": TASK_SECONDS,
        "cpu_ms_per_image": {kind: [round(1000 * s, 1) for s in v] for kind, v in cpu.items()}
        | {"ratio": median_ratio(cpu["four"], cpu["one"])},
        "lateness": {kind: summarize(v).as_dict() for kind, v in late.items()}
        | {
            "p50_ratio": median_ratio(late["four"], late["one"]),
            "p95_ratio": round(percentile(late["four"], 0.95) / percentile(late["one"], 0.95), 2),
        },
        "load_ms": {kind: [round(x.ms) for x in v] for kind, v in loads.items()}
        | {"ratio": median_ratio([x.ms for x in loads["full"]], [x.ms for x in loads["empty"]])},
        # The same every time: what a load costs the wire, whatever the machine's load.
        "load_answer_bytes": {kind: max(x.answer_bytes for x in v) for kind, v in loads.items()},
        "history_bytes": stored_bytes,  # as the page stores it
        "inline_history_bytes": len(json.dumps(history)),  # as an earlier version did
        "search_ms": {
            "n": len(searched),
            "p50": round(statistics.median(searched), 1),
            "p95": round(percentile(searched, 0.95), 1),
        },
    }
