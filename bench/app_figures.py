"""Figures 2-5: the running app, driven through `gradio_client` like any script would.

The playground runs in a child process (`bench.appserver`), RunAPI is a simulator in
another (`bench.simserver`), and every visitor is a `gradio_client` session in this
process with a key of its own.

2. many users: 1, 10 and 50 visitors at once, one image each, 2 s tasks; the wall time
   of the whole wave against one visitor alone. The same against the same app with
   Gradio's default concurrency (one event at a time), and against the floor: a bare
   Gradio app that waits 2 s and returns one image, called the same way (what Gradio
   and the visitors themselves cost on this machine). Beside them, the server's CPU
   time per generation in the waves of 50, the app's against the floor's: on two shared
   cores a crowd's starts and finishes queue for one event loop, so that is where a
   crowd's extra wall time comes from.
3. 4 images in one run against 1, alternating, same 2 s tasks.
4. overhead: one generation at a time with the simulator answering at once, against a
   bare Gradio echo app called the same way; start-up to first page of `python app.py`
   against Gradio's hello world.
5. memory: the app process's RSS idle (after warm-up), at its peak during the 50-visitor
   wave, and 5 s after they left (after a full garbage collection, whose pause is timed:
   every event waits through one when it comes).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import psutil
from gradio_client import Client

from .processes import (
    AppProcess,
    BaselineProcess,
    SimulatorProcess,
    cpu_seconds,
    free_port,
    seconds_to_first_page,
)
from .stats import median_ratio, percentile, ratio, summarize
from .visitors import Outcome, Visitor, close_all, make_visitors, outcome

TASK_SECONDS = 2.0
FORM = {
    "prompt": "a lighthouse at dusk",
    "model": "imagen-4-fast",
    "aspect_ratio": "1:1",
    "seed": 7,
}
# Overhead runs on a model of its own, so the 2 s tasks it learned before do not linger
# in its sample: the simulator answers this one at once, from the start.
INSTANT = {**FORM, "model": "imagen-4-ultra"}
MB = 2**20


def log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


def wave(visitors: list[Visitor], **form: object) -> tuple[float, list[Outcome]]:
    """Every visitor starts one generation at once; the wave's wall time, and each outcome."""
    started = time.monotonic()
    jobs = [visitor.submit(**{**FORM, **form}) for visitor in visitors]
    outcomes = [outcome(job, started) for job in jobs]
    failed = [o.error for o in outcomes if o.error]
    if failed:
        raise RuntimeError(f"{len(failed)} generations failed in a benchmark wave: {failed[0]}")
    return time.monotonic() - started, outcomes


def walls(visitors: list[Visitor], repeats: int) -> list[float]:
    return [wave(visitors)[0] for _ in range(repeats)]


def against_one(walls_by_count: dict[str, list[float]]) -> dict[str, float]:
    """Each count's median wall time over one visitor's."""
    one = statistics.median(walls_by_count["1"])
    return {n: round(ratio(statistics.median(v), one), 2) for n, v in walls_by_count.items()}


def crowds(visitors: list[Visitor], repeats: int, server_pid: int) -> dict:
    """Wall times of waves of 1, 10 and 50 of `visitors`, by count, taken in turns (three
    of one, one of 10, one of 50, `repeats` times): the machine's speed drifts over a
    minute, and turns share the drift out evenly instead of charging it to one count.
    With them, the server's CPU milliseconds per generation in each wave of 50."""
    server = psutil.Process(server_pid)
    result: dict[str, list[float]] = {"1": [], "10": [], "50": []}
    cpu_ms: list[float] = []
    for _ in range(repeats):
        result["1"] += walls(visitors[:1], 3)
        result["10"] += walls(visitors[:10], 1)
        before = cpu_seconds(server)
        result["50"] += walls(visitors, 1)
        cpu_ms.append(1000 * (cpu_seconds(server) - before) / len(visitors))
    for count in (10, 50):
        log(f"{count} visitors: {statistics.median(result[str(count)]):.2f} s")
    return {"walls": result, "cpu_ms": cpu_ms}


def users_and_memory(app: AppProcess, visitors: list[Visitor], repeats: int) -> dict:
    memory = {"idle_mb": app.probe(collect=True)["rss_bytes"] / MB}
    with app.rss_samples() as samples:  # the peak comes with the waves of 50
        result = crowds(visitors, repeats, app.pid)
    memory["peak_50_mb"] = max(samples) / MB
    time.sleep(5)
    after = app.probe(collect=True)
    memory["after_mb"] = after["rss_bytes"] / MB
    memory["full_collection_ms"] = after["full_collection_ms"]
    return result | {"memory": memory}


def floor(repeats: int) -> dict:
    """The same waves against a bare Gradio app that waits 2 s and returns one image."""
    with BaselineProcess("wait") as bare:
        visitors = make_visitors(bare.url, 50, "bare")
        wave(visitors)  # every session made, as for the playground
        result = crowds(visitors, repeats, bare.pid)
        close_all(visitors)
    return result


def four_against_one(visitor: Visitor, pairs: int) -> dict:
    one, four = [], []
    for _ in range(pairs):
        one.append(visitor.generate(**FORM, num_images=1).seconds)
        four.append(visitor.generate(**FORM, num_images=4).seconds)
    return {"one": one, "four": four}


def sequential(call: Callable[[], object], count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        started = time.monotonic()
        call()
        seconds.append(time.monotonic() - started)
    return seconds


def overhead(visitor: Visitor, count: int) -> dict:
    for _ in range(12):  # learn that these tasks end at once (the prior says 16 s)
        visitor.generate(**INSTANT)
    app = sequential(lambda: visitor.generate(**INSTANT), count)
    with BaselineProcess("echo") as echo:
        client = Client(echo.url, verbose=False)
        client.predict("warm up", api_name="/echo")
        bare = sequential(lambda: client.predict("a lighthouse at dusk", api_name="/echo"), count)
        client.close()
    return {"app": app, "echo": bare}


def start_up(repeats: int) -> dict:
    app_port, hello_port = free_port(), free_port()
    app = [
        seconds_to_first_page([sys.executable, "app.py", "--port", str(app_port)], app_port)
        for _ in range(repeats)
    ]
    hello_command = [sys.executable, "-m", "bench.baselines", "hello", "--port", str(hello_port)]
    hello = [seconds_to_first_page(hello_command, hello_port) for _ in range(repeats)]
    return {"app": app, "hello": hello}


def warm_up(visitors: list[Visitor], waves: int) -> None:
    """Every visitor's session made (a browser's page load makes it, before any Generate),
    then the app's client taught the simulator's durations (its priors say 6 s, not 2)."""
    wave(visitors, model=INSTANT["model"])
    for _ in range(waves):
        wave(visitors[:8], num_images=2)


def measure(*, quick: bool) -> dict:
    repeats = 1 if quick else 5
    durations = {"imagen-4-fast": (TASK_SECONDS, TASK_SECONDS), "imagen-4-ultra": (0.0, 0.0)}
    with SimulatorProcess(durations=durations, starting_balance_cents=10**12, seed=2) as server:
        log("the playground, with its own concurrency")
        with AppProcess(server.url) as app:
            visitors = make_visitors(app.url, 50, "ours")
            warm_up(visitors, 2 if quick else 3)
            users = users_and_memory(app, visitors, repeats)
            four = four_against_one(visitors[0], 2 if quick else 6)
            log("overhead: tasks the simulator answers at once")
            costs = overhead(visitors[0], 15 if quick else 40)
            close_all(visitors)
        log("the same app with Gradio's default concurrency (one event at a time)")
        with AppProcess(server.url, max_concurrent_runs=1) as default_app:
            visitors = make_visitors(default_app.url, 3 if quick else 50, "default")
            warm_up(visitors[:1], 2 if quick else 3)
            default_walls = {"1": walls(visitors[:1], 3 * repeats)}
            default_walls[str(len(visitors))] = walls(visitors, 1)
            close_all(visitors)
    log("the floor: a bare Gradio app that waits 2 s and returns one image")
    bare = floor(repeats)
    log("start-up to first page")
    starts = start_up(1 if quick else 3)
    return figures(users, default_walls, bare, four, costs, starts)


def figures(
    users: dict, default_walls: dict, bare: dict, four: dict, costs: dict, starts: dict
) -> dict:
    """The measured seconds, and the ratios that compare them."""
    waves = {"ours": users["walls"], "default": default_walls, "floor": bare["walls"]}
    cpu = {"ours": users["cpu_ms"], "floor": bare["cpu_ms"]}
    return {
        "users": {"task_seconds": TASK_SECONDS}
        | {name: {n: [round(s, 3) for s in v] for n, v in w.items()} for name, w in waves.items()}
        | {f"{name}_ratio": against_one(w) for name, w in waves.items()},
        "server_cpu_ms_per_generation_at_50": {
            name: [round(ms, 2) for ms in values] for name, values in cpu.items()
        }
        | {"ratio": median_ratio(cpu["ours"], cpu["floor"])},
        "four_vs_one": {
            "one": summarize(four["one"]).as_dict(),
            "four": summarize(four["four"]).as_dict(),
            "ratio": median_ratio(four["four"], four["one"]),
        },
        "overhead": {
            "app": summarize(costs["app"]).as_dict(),
            "echo": summarize(costs["echo"]).as_dict(),
            "added_p50": round(percentile(costs["app"], 0.5) - percentile(costs["echo"], 0.5), 3),
            "added_p95": round(percentile(costs["app"], 0.95) - percentile(costs["echo"], 0.95), 3),
        },
        "start_up": {
            "app": [round(s, 2) for s in starts["app"]],
            "hello": [round(s, 2) for s in starts["hello"]],
            "ratio": median_ratio(starts["app"], starts["hello"]),
        },
        "memory": {name: round(mb, 1) for name, mb in users["memory"].items()},
    }
