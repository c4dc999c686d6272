"""The soak: 50 visitors, hundreds of generations, faults everywhere, and nothing may leak.

    python -m bench soak          # 50 visitors, 1000 generations (~2.5 min)
    python -m bench soak --quick  # 50 visitors for about a minute, ~400 generations (CI)
    python -m bench soak --rounds 5  # the same app soaked five times: does its memory settle?
    python -m bench soak --quick --rounds 3 --tracemalloc  # and where Python's heap grew

RunAPI is a simulator in this process that faults about one request in ten, across
every fault class it has; the app runs in a process of its own (`bench.appserver`) with
an 8 s deadline. Each visitor (a `gradio_client` session with a key of its own) keeps
generating 1-3 images with a seed and a prompt of its own; one generation in ten is
stopped mid-run (the Stop button: Gradio's cancel) and one in ten is a tab closed
mid-run. At the end, it checks:

- every generation ended as images, as a clear error (a sentence that says what to do,
  never "Something unexpected"), or as stopped;
- no image reached the wrong visitor: each one's bytes are an image the simulator served
  for a task made with that visitor's key and seeds; and none was lost: a generation
  that no fault touched brought all its images;
- nothing outlived its run: once every deadline has passed, no status request reaches
  RunAPI, the app holds no connection to it, and its event loop holds no more tasks
  than when idle;
- the app's RSS came back near its idle level;
- with `--rounds N`, from round 2 on the app's RSS after each round stays within 10% of
  round 2's (round 1 fills what is bounded: Gradio's sessions, the finished runs kept).

The last lines are the soak's part of the benchmark's table (`bench/report.py`).
Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil

from runapi_ui.runapi.simulator import (
    FAULT_KINDS,
    SimulatorConfig,
    SimulatorServer,
    image_digest,
    parse_faults,
)

from .processes import AppProcess
from .report import machine, table
from .visitors import Outcome, Visitor, close_all, make_visitors, outcome

VISITORS = 50
DEADLINE = 8.0  # seconds: the app's, so stuck tasks end within the soak
SETTLE = DEADLINE + 2  # seconds: after the last visitor, every run has ended by then
DURATIONS = {"imagen-4-fast": (0.5, 1.0), "imagen-4": (0.8, 1.5), "imagen-4-ultra": (1.0, 2.0)}
# About one request in ten, every class: transient ones (retried) on any request, the
# rest where they belong.
FAULTS = (
    "rate_limit@any~0.02,server_error@any~0.02,drop@any~0.015,status_garbage@any~0.015,"
    "bad_key@any~0.004,no_credits~0.01,invalid~0.01,task_fail~0.02,stuck~0.01,"
    "image_404~0.01,image_garbage~0.01,image_truncated~0.01,image_bomb~0.01"
)
# How a clear message starts: the README's table of errors, and the page's own checks.
CLEAR_STARTS = (
    "Check your input",
    "RunAPI did not accept the API key",
    "Your RunAPI account does not have enough credits",
    "RunAPI is rate limiting",
    "RunAPI rejected the request",
    "The generation failed",
    "Task ",
    "RunAPI is having trouble",
    "Could not reach RunAPI",
    "The image",
    "The connection broke while downloading",
    "RunAPI answered HTTP",
)
# "Near idle": within 25%. Python keeps much of the heap it freed, and the app keeps
# finished runs (not their images) for an hour so a visitor can come back to them.
RSS_SLACK = 1.25
MB = 2**20
# Across rounds against one app, its RSS after each round from the second on stays within
# 10% of the second's: a leak of what each generation leaves behind grows with every round,
# while the first round still fills what is bounded (sessions, tabs, the allocator's pools).
ROUND_GROWTH = 1.10
STEADY_FROM = 2  # the round whose RSS the later ones are held to
# Gradio keeps a copy of the page's config for each of the last `sessions_kept` sessions
# (~100 KB each; 1000 by default), and their streams' unread messages. Every round brings
# ~50-80 new sessions (visitors, closed tabs): kept to 100 here, that bound is reached in
# the first round, so what grows after is something else.
SESSIONS_KEPT = 100
# Finished runs wait for their visitor (2000 at most by default), ~200-330 more each quick
# round: kept to 200 here, that bound too is reached in the first round.
RUNS_KEPT = 200
EVENT_LOOP_SLACK = 2  # tasks Gradio may keep for a moment after the last request
# A stream a visitor itself still holds open (gradio_client keeps one now and then after
# close()) is served by Gradio with four tasks: its request cycle, the queue's read, the
# heartbeat and its handle. Those are the visitor's, not a leak of the app's.
TASKS_PER_OPEN_STREAM = 4


@dataclass
class Generation:
    visitor: str  # the visitor's key
    prompt: str
    model: str
    seed: int
    images: int
    action: str  # "wait", "stop" or "leave"
    outcome: Outcome | None = None
    digests: list[str] = field(default_factory=list)  # image_digest of each image received
    stop_seconds: float | None = None  # how long the app took to answer its Stop


@dataclass
class Tally:
    generations: list[Generation] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, generation: Generation) -> None:
        with self.lock:
            self.generations.append(generation)


def visit(visitor: Visitor, index: int, until: float, count: int, tally: Tally) -> None:
    """One visitor's session: generations one after another until time or count runs out."""
    rng = random.Random(index)
    done = 0
    while time.monotonic() < until and done < count:
        generation = Generation(
            visitor=visitor.key,
            prompt=f"soak visitor {index} generation {done}",
            model=rng.choice(list(DURATIONS)),
            seed=index * 1_000_000 + done * 10,
            images=rng.choice([1, 1, 1, 2, 2, 3]),
            action=rng.choices(["wait", "stop", "leave"], [8, 1, 1])[0],
        )
        form = {
            "prompt": generation.prompt,
            "model": generation.model,
            "num_images": generation.images,
            "seed": generation.seed,
        }
        started = time.monotonic()
        try:
            if generation.action == "leave":
                visitor.leave_mid_run(after=rng.uniform(0.2, 1.5), **form)
            else:
                job = visitor.submit(**form)
                stop = generation.action == "stop"
                if stop:
                    time.sleep(rng.uniform(0.3, 1.5))
                    asked = time.monotonic()
                    # gradio_client gives up on the answer after 5 s; the page's Stop does
                    # not wait for it at all. How the run ends is checked below either way.
                    with suppress(httpx.TimeoutException):
                        job.cancel()
                    generation.stop_seconds = time.monotonic() - asked
                generation.outcome = outcome(job, started, stopped=stop)
                generation.digests = [
                    image_digest(Path(path).read_bytes()) for path in generation.outcome.images
                ]
        except Exception as error:  # counted, so a broken visitor fails the soak, not hides
            generation.outcome = Outcome(
                time.monotonic() - started, error=f"(the visitor broke: {error!r})"
            )
        tally.add(generation)
        done += 1


def warm_up(app: AppProcess, *, growth: bool) -> dict[str, Any]:
    """One wave of every visitor, then nobody: the app's idle figures, past its first use
    (`growth`: and tracemalloc's first snapshot, which each round's end is compared with)."""
    visitors = make_visitors(app.url, VISITORS, "warm")
    jobs = [
        v.submit(prompt="warm up", model="imagen-4-fast", seed=i) for i, v in enumerate(visitors)
    ]
    for job in jobs:
        outcome(job, time.monotonic())
    close_all(visitors)
    time.sleep(SETTLE)  # as long as the soak's end waits: like is compared with like
    return app.probe(collect=True, growth=growth)


def is_clear(message: str) -> bool:
    return message.startswith(CLEAR_STARTS) and "unexpected" not in message.lower()


def check_deliveries(tally: Tally, server: SimulatorServer) -> list[str]:
    """Problems with what visitors received: wrong owner, lost images, unclear errors."""
    simulator = server.simulator
    problems = []
    faulted: set[tuple[str | None, int | None]] = set()  # (key, seed) touched by a fault
    for request in simulator.requests:
        task = simulator.tasks.get(request.task_id or "")
        seed = task.seed if task else (request.body or {}).get("seed")
        if request.fault or (task and (task.fails or task.stuck)):
            faulted.add((request.api_key, seed))
    for g in tally.generations:
        seeds = range(g.seed, g.seed + g.images)
        result = g.outcome
        if result is None or result.stopped:
            continue  # a tab closed mid-run, or a Stop: nothing to deliver
        if result.error is not None:
            if not is_clear(result.error):
                problems.append(f"an unclear error for {g.visitor}: {result.error!r}")
            continue
        for digest in g.digests:
            task = simulator.tasks.get(simulator.served_images.get(digest, ""))
            if task is None or task.api_key != g.visitor or task.seed not in seeds:
                found = f"{task.api_key} seed {task.seed}" if task else "no task served it"
                problems.append(
                    f"{g.visitor} received an image that is not theirs ({g.prompt}, seeds "
                    f"{g.seed}+{g.images}, captions {result.captions}: {found})"
                )
        touched = any((g.visitor, seed) in faulted for seed in seeds)
        if not touched and len(result.images) != g.images:
            problems.append(
                f"{g.visitor} got {len(result.images)} of {g.images} images with no fault "
                f"in {result.seconds:.1f} s: "
                + "; ".join(_story(server, g.visitor, s) for s in seeds)
            )
    return problems


def _story(server: SimulatorServer, key: str, seed: int) -> str:
    """What the simulator saw of one image's task, for a problem report."""
    simulator = server.simulator
    tasks = [t for t in simulator.tasks.values() if t.api_key == key and t.seed == seed]
    if not tasks:
        return f"seed {seed}: no task"
    task = tasks[0]
    seen = [r for r in simulator.requests if r.task_id == task.id]
    polls = sum(1 for r in seen if r.method == "GET" and not r.path.startswith("/files/"))
    images = sum(1 for r in seen if r.path.startswith("/files/"))
    return f"seed {seed}: {task.duration:.1f} s task, {polls} polls, {images} image fetches"


def held_connections(url: str) -> int:
    """Connections this process (the visitors' side) still has open to the app."""
    port = urlsplit(url).port
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def quiet_status_requests(server: SimulatorServer, seconds: float) -> int:
    """Status requests that reach RunAPI during `seconds` of quiet."""
    before = len(server.simulator.requests)
    time.sleep(seconds)
    return sum(
        1
        for request in list(server.simulator.requests)[before:]
        if request.method == "GET" and not request.path.startswith("/files/")
    )


def log(message: str, since: float) -> None:
    print(f"  · {time.monotonic() - since:5.1f} s  {message}", flush=True)


def main(*, quick: bool, rounds: int = 1, tracemalloc: bool = False) -> int:
    seconds, per_visitor = (25.0, 10**6) if quick else (600.0, 20)
    config = SimulatorConfig(
        durations=DURATIONS,
        faults=parse_faults(FAULTS),
        starting_balance_cents=10**12,
        record_limit=10**6,
        seed=5,
    )
    kinds = {fault.kind for fault in config.faults}
    assert kinds == set(FAULT_KINDS), f"the soak must cover every fault: {set(FAULT_KINDS) - kinds}"
    began = time.monotonic()
    print(
        f"soak: {VISITORS} visitors, {'~1 min' if quick else '1000 generations'}"
        f"{f' x {rounds} rounds' if rounds > 1 else ''}, faults {FAULTS}",
        flush=True,
    )
    with (
        SimulatorServer(config) as server,
        AppProcess(
            server.url,
            deadline=DEADLINE,
            sessions_kept=SESSIONS_KEPT,
            runs_kept=RUNS_KEPT,
            tracemalloc=tracemalloc,
        ) as app,
    ):
        log("the app is up; a warm-up wave, then its idle figures", began)
        idle = warm_up(app, growth=tracemalloc)
        status = 0
        after_rounds: list[int] = []  # the app's RSS after each round has settled
        for number in range(1, rounds + 1):
            if rounds > 1:
                log(f"round {number} of {rounds}", began)
            failed, end = one_round(
                app, server, idle, seconds, per_visitor, began, number, tracemalloc
            )
            status |= failed
            after_rounds.append(end["rss_bytes"])
            log(f"RSS after round {number}: {end['rss_bytes'] / MB:.0f} MB", began)
            log(
                f"Gradio keeps {end['gradio_sessions']} sessions' state and "
                f"{end['gradio_message_queues']} message queues ({end['gradio_messages_waiting']} "
                f"messages waiting); the app keeps {end['runs_kept']} runs",
                began,
            )
            print_growth(end.get("python_growth", []), number)
    figures = rounds_figures(idle["rss_bytes"], after_rounds)
    print(
        "\n" + table({"mode": "quick" if quick else "full", "machine": machine(), "soak": figures})
    )
    return status | (0 if figures["steady"] is not False else 1)


def one_round(
    app: AppProcess,
    server: SimulatorServer,
    idle: dict[str, Any],
    seconds: float,
    per_visitor: int,
    began: float,
    number: int,
    growth: bool,
) -> tuple[int, dict[str, Any]]:
    """Every visitor generating until `seconds` or `per_visitor` run out, then the checks
    on what they got and on what the app still holds: 0 when every check passes, and the
    app's figures at the end (after a garbage collection)."""
    tally = Tally()
    visitors = make_visitors(app.url, VISITORS, f"soak{number}")
    log("visitors start", began)
    first_request = len(server.simulator.requests)
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=visit, args=(v, i, until, per_visitor, tally))
        for i, v in enumerate(visitors)
    ]
    started = time.monotonic()
    with app.rss_samples() as rss:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = time.monotonic() - started
    close_all(visitors)
    log("visitors done; waiting out every deadline", began)
    time.sleep(SETTLE)  # every run still going (a closed tab's) has hit its deadline
    stray_polls = quiet_status_requests(server, 3.0)
    end = app.probe(collect=True, growth=growth)
    end["held_by_the_bench"] = held_connections(app.url)
    end["peak_rss_bytes"] = max(rss)
    problems = check_deliveries(tally, server)
    requests = list(server.simulator.requests)[first_request:]
    log("checked", began)
    return report(tally, requests, idle, end, stray_polls, problems, elapsed), end


def rounds_figures(idle: int, after_rounds: list[int]) -> dict[str, Any]:
    """The app's RSS idle and after each round, and whether it settled: from round
    STEADY_FROM on, each within ROUND_GROWTH of that round's (None: too few rounds to say)."""
    settled = after_rounds[STEADY_FROM - 1 :]
    steady = max(settled) <= ROUND_GROWTH * settled[0] if len(settled) > 1 else None
    return {
        "idle_rss_mb": round(idle / MB),
        "rss_mb_after_rounds": [round(rss / MB) for rss in after_rounds],
        "steady_from_round": STEADY_FROM,
        "within": ROUND_GROWTH,
        "steady": steady,
    }


def print_growth(sites: list[str], number: int) -> None:
    """tracemalloc's sites that grew most over round `number` (with `--tracemalloc`)."""
    if sites:
        print(f"  Python's allocations that grew most over round {number}:")
        for site in sites:
            print(f"        {site}")


def report(
    tally: Tally,
    requests: list,
    idle: dict[str, Any],
    end: dict[str, Any],
    stray_polls: int,
    problems: list[str],
    elapsed: float,
) -> int:
    generations = tally.generations
    ended = Counter(
        "left mid-run"
        if g.outcome is None
        else "stopped"
        if g.outcome.stopped
        else "error"
        if g.outcome.error
        else "images"
        for g in generations
    )
    faults = Counter(r.fault for r in requests if r.fault)
    faulted_share = sum(faults.values()) / max(1, len(requests))
    waits = [g.outcome.seconds for g in generations if g.outcome and not g.outcome.stopped]
    print(
        f"{len(generations)} generations in {elapsed:.0f} s: "
        + ", ".join(f"{count} {how}" for how, count in ended.most_common())
    )
    print(
        f"{len(requests)} requests reached RunAPI, {faulted_share:.1%} faulted: "
        + ", ".join(f"{kind} {n}" for kind, n in faults.most_common())
    )
    if waits:
        print(f"seconds per generation: p50 {statistics.median(waits):.2f}, max {max(waits):.2f}")
    stops = [g.stop_seconds for g in generations if g.stop_seconds is not None]
    if stops:
        print(f"seconds to answer a Stop: p50 {statistics.median(stops):.2f}, max {max(stops):.2f}")
    checks = {
        "every generation ended as images, a clear error or stopped": not any(
            "unclear" in p for p in problems
        ),
        "no image reached the wrong visitor": not any("not theirs" in p for p in problems),
        "no image lost where no fault struck": not any("with no fault" in p for p in problems),
        f"no status request after every run ended ({stray_polls} seen)": stray_polls == 0,
        f"no connection to RunAPI left open ({end['connections_to_runapi']} open)": (
            end["connections_to_runapi"] == 0
        ),
        f"no call left waiting on the RunAPI worker ({end['calls_waiting_on_the_worker']})": (
            end["calls_waiting_on_the_worker"] == 0
        ),
        f"event-loop tasks back to idle ({idle['event_loop_tasks']} idle, "
        f"{end['event_loop_tasks']} at the end, {end['held_by_the_bench']} stream(s) the "
        "visitors still hold)": end["event_loop_tasks"]
        <= idle["event_loop_tasks"]
        + EVENT_LOOP_SLACK
        + TASKS_PER_OPEN_STREAM * end["held_by_the_bench"],
        f"RSS back near idle ({idle['rss_bytes'] / MB:.0f} MB idle, "
        f"{end['peak_rss_bytes'] / MB:.0f} MB at the peak, {end['rss_bytes'] / MB:.0f} MB at "
        "the end)": end["rss_bytes"] <= RSS_SLACK * idle["rss_bytes"],
    }
    for check, passed in checks.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {check}")
    grown = Counter(end["event_loop_task_kinds"])
    grown.subtract(idle["event_loop_task_kinds"])
    more = [f"{kind} +{n}" for kind, n in grown.most_common() if n > 0]
    if more:
        print(f"        event-loop tasks that grew: {', '.join(more)}")
        print(
            f"        visitors' connections, seen by the app: {end['visitor_connections']}; "
            f"still open on the visitors' side: {end['held_by_the_bench']}"
        )
    for problem in problems[:10]:
        print(f"        {problem}")
    return 0 if all(checks.values()) else 1
