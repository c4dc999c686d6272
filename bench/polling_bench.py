"""How soon each client notices a finished task, and how many status requests it spends.

    python bench/polling_bench.py            # 12 tasks per model per client, ~1 min
    python bench/polling_bench.py --quick    # imagen-4-fast only, 3 waves of 2, ~15 s (CI)

What runs. One `SimulatorServer` in this process at time scale 1 (realistic durations:
imagen-4-fast 4.5 s, imagen-4 8 s, imagen-4-ultra 13 s) with its default ±15% jitter.
Both clients run against that same server at the same time, so their tasks draw from
the same duration distribution under the same load:

- ours: one `RunAPIClient` with its default priors (catalog.typical_seconds: 6/10/16 s,
  deliberately not the simulator's figures), so it starts wrong and has to learn;
- the official SDK (`runapi-imagen-4` 0.3.0, unmodified): `text_to_image.run()` in a
  thread per task, polling every 2 s as it always does.

Tasks go in waves (default 4 per model per client; the three models side by side). In
each wave, ours and the SDK start the same number of tasks together; a wave ends when
all of its tasks have. Ours carries what it learned into the next wave; the SDK has
nothing to learn. The table shows ours over all tasks (the first wave runs on the wrong
priors, and it is counted), and ours after its first wave ("learned").

What is measured, per task:
- late: when the client noticed completion minus when the task actually finished.
  The true finish is the simulator's `created_at + duration` (monotonic clock, same
  process). Ours noticed it at its DOWNLOADING update, which fires right after the
  status answer said completed and before the image download (the SDK downloads
  nothing, so this keeps the two comparable); the SDK noticed it when `run()` returned.
- status requests: the simulator's recorded GETs whose path ends with the task's id
  (image downloads are not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runapi.imagen_4 import Imagen4Client

from runapi_ui.client import GenerationRequest, Phase, RunAPIClient, TaskUpdate
from runapi_ui.simulator import SimulatorConfig, SimulatorServer

MODELS = ("imagen-4-fast", "imagen-4", "imagen-4-ultra")
OURS_KEY = "sk-bench-ours"
SDK_KEY = "sk-bench-sdk"


@dataclass
class Sample:
    task_id: str
    noticed_at: float
    wave: int


@dataclass
class Runs:
    ours: dict[str, list[Sample]] = field(default_factory=lambda: {m: [] for m in MODELS})
    sdk: dict[str, list[Sample]] = field(default_factory=lambda: {m: [] for m in MODELS})


async def run_ours(client: RunAPIClient, model: str, wave: int, runs: Runs) -> None:
    noticed: dict[str, float] = {}

    def on_update(update: TaskUpdate) -> None:
        if update.phase is Phase.DOWNLOADING:
            noticed[update.task_id] = time.monotonic()

    request = GenerationRequest(model=model, prompt=f"benchmark {model} wave {wave}")
    result = await client.generate(request, on_update=on_update)
    runs.ours[model].append(Sample(result.task_id, noticed[result.task_id], wave))


def run_sdk(url: str, model: str, wave: int) -> Sample:
    client = Imagen4Client(api_key=SDK_KEY, base_url=url)
    try:
        result = client.text_to_image.run(model=model, prompt=f"benchmark {model} wave {wave}")
        return Sample(result.id, time.monotonic(), wave)
    finally:
        client._http.close()  # the SDK has no public close


async def run_model(
    model: str,
    waves: int,
    per_wave: int,
    client: RunAPIClient,
    server: SimulatorServer,
    pool: ThreadPoolExecutor,
    runs: Runs,
) -> None:
    loop = asyncio.get_running_loop()
    for wave in range(waves):
        ours = [run_ours(client, model, wave, runs) for _ in range(per_wave)]
        sdk = [
            loop.run_in_executor(pool, run_sdk, server.url, model, wave) for _ in range(per_wave)
        ]
        *_, sdk_samples = await asyncio.gather(*ours, asyncio.gather(*sdk))
        runs.sdk[model].extend(sdk_samples)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measure(server: SimulatorServer, samples: list[Sample]) -> tuple[list[float], list[int]]:
    tasks = server.simulator.tasks
    late = [
        s.noticed_at - (tasks[s.task_id].created_at + tasks[s.task_id].duration) for s in samples
    ]
    polls = {s.task_id: 0 for s in samples}
    for request in server.simulator.requests:
        if request.method == "GET" and not request.path.startswith("/files/"):
            task_id = request.path.rsplit("/", 1)[-1]
            if task_id in polls:
                polls[task_id] += 1
    return late, list(polls.values())


def report(server: SimulatorServer, runs: Runs, models: tuple[str, ...], client: RunAPIClient):
    header = (
        f"{'model':<15} {'client':<16} {'tasks':>5} "
        f"{'late med':>9} {'late p95':>9} {'polls/task':>11}"
    )
    print(header)
    print("-" * len(header))
    totals: dict[str, tuple[list[float], list[int]]] = {"ours": ([], []), "sdk": ([], [])}
    for model in models:
        rows = {
            "ours": runs.ours[model],
            "ours, learned": [s for s in runs.ours[model] if s.wave > 0],
            "official SDK": runs.sdk[model],
        }
        figures = {}
        for name, samples in rows.items():
            if not samples:
                continue
            late, polls = measure(server, samples)
            figures[name] = (statistics.median(late), p95(late), statistics.mean(polls))
            print(
                f"{model:<15} {name:<16} {len(samples):>5} {figures[name][0]:>8.2f}s "
                f"{figures[name][1]:>8.2f}s {figures[name][2]:>11.2f}"
            )
        for label, key in (("ours", "ours"), ("sdk", "official SDK")):
            late, polls = measure(server, rows[key])
            totals[label][0].extend(late)
            totals[label][1].extend(polls)
        ours, sdk = figures["ours"], figures["official SDK"]
        print(
            f"{model:<15} {'ratio ours/SDK':<16} {'':>5} {ours[0] / sdk[0]:>9.2f} "
            f"{ours[1] / sdk[1]:>9.2f} {ours[2] / sdk[2]:>11.2f}"
        )
        real = [t.duration for t in server.simulator.tasks.values() if t.model == model]
        early, late_edge = client.durations.window(model)
        print(
            f"{'':<15} (real duration {statistics.mean(real):.2f} s ±{statistics.pstdev(real):.2f};"
            f" ours learned window {early:.2f}–{late_edge:.2f} s)"
        )
        print()
    (ours_late, ours_polls), (sdk_late, sdk_polls) = totals["ours"], totals["sdk"]
    print(
        f"{'all models':<15} {'ratio ours/SDK':<16} {len(ours_late):>5} "
        f"{statistics.median(ours_late) / statistics.median(sdk_late):>9.2f} "
        f"{p95(ours_late) / p95(sdk_late):>9.2f} "
        f"{statistics.mean(ours_polls) / statistics.mean(sdk_polls):>11.2f}"
    )


async def main_async(args: argparse.Namespace) -> None:
    models: tuple[str, ...] = ("imagen-4-fast",) if args.quick else tuple(args.models)
    # Quick still runs three waves, so it shows learning, not only the first guesses.
    tasks = 6 if args.quick else args.tasks
    per_wave = 2 if args.quick else min(args.wave, tasks)
    waves = math.ceil(tasks / per_wave)
    config = SimulatorConfig(
        time_scale=args.time_scale, starting_balance_cents=10**9, seed=args.seed
    )
    print(
        f"{len(models)} model(s) × {waves * per_wave} tasks per client, waves of {per_wave}, "
        f"time scale {args.time_scale}, jitter ±{config.jitter:.0%}"
    )
    with SimulatorServer(config) as server, ThreadPoolExecutor(max_workers=64) as pool:
        async with RunAPIClient(api_key=OURS_KEY, base_url=server.url) as client:
            runs = Runs()
            started = time.monotonic()
            await asyncio.gather(
                *(run_model(m, waves, per_wave, client, server, pool, runs) for m in models)
            )
            print(f"ran in {time.monotonic() - started:.1f} s\n")
            report(server, runs, models, client)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="imagen-4-fast, 3 waves of 2 tasks")
    parser.add_argument("--tasks", type=int, default=12, help="tasks per model per client")
    parser.add_argument("--wave", type=int, default=4, help="tasks started together")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1, help="the simulator's jitter seed")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
