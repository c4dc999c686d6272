"""Figures 2-5: the running app, driven through `gradio_client` like any script would.

The playground runs in a child process (`bench.appserver`), RunAPI is a simulator in this
process, and every visitor is a `gradio_client` session with a key of its own.

2. many users: 1, 10 and 50 visitors at once, one image each, 2 s tasks; the wall time
   of the whole wave against one visitor alone. The same against the same app with
   Gradio's default concurrency (one event at a time).
3. 4 images in one run against 1, alternating, same 2 s tasks.
4. overhead: one generation at a time with the simulator answering at once, against a
   bare Gradio echo app called the same way; start-up to first page of `python app.py`
   against Gradio's hello world.
5. memory: the app process's RSS idle (after warm-up), at its peak during the 50-visitor
   wave, and 5 s after they left (after a garbage collection).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from gradio_client import Client

from runapi_ui.simulator import SimulatorConfig, SimulatorServer

from .processes import AppProcess, BaselineProcess, free_port, seconds_to_first_page
from .stats import percentile, ratio, summarize
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


def users_and_memory(app: AppProcess, visitors: list[Visitor], repeats: int) -> dict:
    memory = {"idle_mb": app.probe(collect=True)["rss_bytes"] / MB}
    single = walls(visitors[:1], 3 * repeats)
    result = {"1": single}
    for count in (10, 50):
        if count > len(visitors):
            continue
        if count == 50:
            with app.rss_samples() as samples:
                result[str(count)] = walls(visitors[:count], repeats)
            memory["peak_50_mb"] = max(samples) / MB
            time.sleep(5)
            memory["after_mb"] = app.probe(collect=True)["rss_bytes"] / MB
        else:
            result[str(count)] = walls(visitors[:count], repeats)
        log(f"{count} visitors: {statistics.median(result[str(count)]):.2f} s")
    return {"walls": result, "memory": memory}


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
    """Teach the app's client the simulator's durations (its priors say 6 s, not 2)."""
    for _ in range(waves):
        wave(visitors[:8], num_images=2)


def measure(*, quick: bool) -> dict:
    repeats = 1 if quick else 3
    config = SimulatorConfig(
        durations={"imagen-4-fast": (TASK_SECONDS, TASK_SECONDS), "imagen-4-ultra": (0.0, 0.0)},
        starting_balance_cents=10**12,
        seed=2,
    )
    with SimulatorServer(config) as server:
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
    log("start-up to first page")
    starts = start_up(1 if quick else 3)
    return figures(users, default_walls, four, costs, starts)


def figures(users: dict, default_walls: dict, four: dict, costs: dict, starts: dict) -> dict:
    """The measured seconds, and the ratios that compare them."""
    ours = users["walls"]
    one = statistics.median(ours["1"])
    default_one = statistics.median(default_walls["1"])
    return {
        "users": {
            "task_seconds": TASK_SECONDS,
            "ours": {n: [round(s, 3) for s in v] for n, v in ours.items()},
            "ours_ratio": {n: round(ratio(statistics.median(v), one), 2) for n, v in ours.items()},
            "default": {n: [round(s, 3) for s in v] for n, v in default_walls.items()},
            "default_ratio": {
                n: round(ratio(statistics.median(v), default_one), 2)
                for n, v in default_walls.items()
            },
        },
        "four_vs_one": {
            "one": summarize(four["one"]).as_dict(),
            "four": summarize(four["four"]).as_dict(),
            "ratio": round(
                ratio(statistics.median(four["four"]), statistics.median(four["one"])), 2
            ),
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
            "ratio": round(
                ratio(statistics.median(starts["app"]), statistics.median(starts["hello"])), 2
            ),
        },
        "memory": {name: round(mb, 1) for name, mb in users["memory"].items()},
    }
