"""Figure 7: a remix of 8 sources of 4 MB each, through `/remix` as a script sends it.

The playground runs in a child process (`bench.appserver`), RunAPI is a simulator in
another; the script is `gradio_client` in this process. Each source is a 4 MB JPEG of
noise (photos that large barely compress). Measured: the app's RSS (with its RunAPI
worker) idle and at its peak while the remix checks, cleans, keeps and uploads the
sources and the task runs, sampled every 0.2 s; and the remix's wall time against a
one-source remix of a small image, alternating.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from gradio_client import Client, handle_file
from PIL import Image

from runapi_ui.runapi.catalog import REMIX_MODEL

from .app_figures import log
from .processes import AppProcess, SimulatorProcess
from .stats import median_ratio

SOURCES = 8
SOURCE_BYTES = 4 * 2**20
MB = 2**20


def noise_jpeg(path: Path, target_bytes: int) -> Path:
    """A JPEG of random pixels of about `target_bytes` (noise defeats compression)."""
    side = int((target_bytes / 1.17) ** 0.5)  # ~1.17 bytes a pixel at quality 95
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, quality=95)
    return path


def remix(client: Client, paths: list[Path]) -> float:
    started = time.monotonic()
    client.predict(
        prompt="these, as one collage",
        images=[handle_file(str(path)) for path in paths],
        api_key="sk-bench-uploads",
        api_name="/remix",
    )
    return time.monotonic() - started


def measure(*, quick: bool) -> dict:
    turns = 1 if quick else 3
    folder = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    big = [noise_jpeg(folder / f"big-{n}.jpg", SOURCE_BYTES) for n in range(SOURCES)]
    small = [noise_jpeg(folder / "small.jpg", 100_000)]
    with (
        # 2 s tasks, not the simulator's ~19 s remixes: what is measured is the sources'.
        SimulatorProcess(
            durations={REMIX_MODEL: (2.0, 2.0)}, starting_balance_cents=10**12, seed=3
        ) as server,
        AppProcess(server.url) as app,
    ):
        client = Client(app.url, verbose=False, download_files=str(folder / "out"))
        remix(client, small)  # warm: the first remix imports what remixing needs
        idle = app.probe(collect=True)["rss_bytes"]
        eight, one, peaks = [], [], []
        for turn in range(turns):
            log(f"turn {turn + 1}: 8 sources of {SOURCE_BYTES // MB} MB, then 1 small")
            with app.rss_samples() as samples:
                eight.append(remix(client, big))
            peaks.append(max(samples))
            one.append(remix(client, small))
    return {
        "sources": SOURCES,
        "source_mb": round(sum(p.stat().st_size for p in big) / SOURCES / MB, 2),
        "idle_rss_mb": round(idle / MB, 1),
        "peak_rss_mb": [round(peak / MB, 1) for peak in peaks],
        "peak_over_idle_mb": round((max(peaks) - idle) / MB, 1),
        "eight_seconds": [round(s, 2) for s in eight],
        "one_seconds": [round(s, 2) for s in one],
        "eight_over_one": median_ratio(eight, one),
        "eight_median_seconds": round(statistics.median(eight), 2),
    }
