"""Figure 1: how soon a finished task is noticed, ours against the official SDK.

One `SimulatorServer` in this process, durations evenly jittered as the issue tried them
(imagen-4-fast 3-5 s, imagen-4 5-8 s, imagen-4-ultra 8-12 s), not the client's priors
(6, 10, 16 s). Both clients run against it at the same time, in waves: in each wave, ours
and the SDK start the same number of tasks of each model together; a wave ends when all
of its tasks have.

- ours: one `RunAPIClient` with the catalog's priors, so its first wave runs on what it
  was told ("cold") and the later ones on what it learned ("warm");
- the official SDK (`runapi-imagen-4`, unmodified): `text_to_image.run()` in a thread per
  task, polling every 2 s as it always does.

A second run of the same waves ("far") uses durations far from the priors, as a freshly
started app meets them (every Space restart): imagen-4 tasks of 0.6-1 s (its prior is
5-15 s) and imagen-4-fast tasks of 20-24 s (its prior 3-9 s). Its cold wave shows that a
wrong prior costs no lateness against the SDK; its later waves that a couple of finishes
are enough to be ahead of it again.

Per task: lateness is when the client noticed the finish minus when the task actually
finished (the simulator's `created_at + duration`, same clock). Ours noticed it at its
DOWNLOADING update, right after the status answer and before any download (the SDK
downloads nothing); the SDK when `run()` returned. Status requests are the simulator's
recorded reads of that task.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from runapi.imagen_4 import Imagen4Client

from runapi_ui.runapi.client import GenerationRequest, Phase, RunAPIClient, TaskUpdate
from runapi_ui.runapi.simulator import SimulatorConfig, SimulatorServer

from .stats import Summary, summarize

DURATIONS = {"imagen-4-fast": (3.0, 5.0), "imagen-4": (5.0, 8.0), "imagen-4-ultra": (8.0, 12.0)}
FAR_DURATIONS = {"imagen-4": (0.6, 1.0), "imagen-4-fast": (20.0, 24.0)}
OURS_KEY = "sk-bench-ours"
SDK_KEY = "sk-bench-sdk"


@dataclass(frozen=True)
class Noticed:
    client: str  # "ours" or "sdk"
    model: str
    wave: int
    task_id: str
    at: float  # monotonic


async def ours(client: RunAPIClient, model: str, wave: int) -> Noticed:
    noticed: list[float] = []

    def on_update(update: TaskUpdate) -> None:
        if update.phase is Phase.DOWNLOADING:
            noticed.append(time.monotonic())

    request = GenerationRequest(model=model, prompt=f"benchmark {model} wave {wave}")
    result = await client.generate(request, on_update=on_update)
    return Noticed("ours", model, wave, result.task_id, noticed[0])


def sdk(url: str, model: str, wave: int) -> Noticed:
    client = Imagen4Client(api_key=SDK_KEY, base_url=url)
    try:
        result = client.text_to_image.run(model=model, prompt=f"benchmark {model} wave {wave}")
        return Noticed("sdk", model, wave, result.id, time.monotonic())
    finally:
        client._http.close()  # the SDK has no public close


async def run_waves(
    server: SimulatorServer, models: tuple[str, ...], waves: int, per_wave: int
) -> list[Noticed]:
    loop = asyncio.get_running_loop()
    noticed: list[Noticed] = []
    with ThreadPoolExecutor(max_workers=len(models) * per_wave) as pool:
        async with RunAPIClient(api_key=OURS_KEY, base_url=server.url) as client:
            for wave in range(waves):
                jobs = [
                    job
                    for model in models
                    for _ in range(per_wave)
                    for job in (
                        ours(client, model, wave),
                        loop.run_in_executor(pool, sdk, server.url, model, wave),
                    )
                ]
                noticed += await asyncio.gather(*jobs)
    return noticed


def measure(*, quick: bool) -> dict:
    """Run the waves and return figure 1: per model and in all, cold and warm, ours and SDK;
    then the same on durations far from the priors (rows named "far ...")."""
    models = ("imagen-4-fast",) if quick else tuple(DURATIONS)
    waves, per_wave = (3, 4) if quick else (5, 6)
    started = time.monotonic()
    rows, lateness = play(DURATIONS, models, waves, per_wave)
    far_waves = 3 if quick else 4
    far_rows, _ = play(FAR_DURATIONS, tuple(FAR_DURATIONS), far_waves, per_wave)
    return {
        "models": list(models),
        "waves": waves,
        "per_wave": per_wave,
        "far_waves": far_waves,
        "seconds": round(time.monotonic() - started, 1),
        "rows": {**rows, **{f"far {name}": row for name, row in far_rows.items()}},
        "lateness": lateness,
    }


def play(
    durations: dict[str, tuple[float, float]], models: tuple[str, ...], waves: int, per_wave: int
) -> tuple[dict[str, dict[str, dict]], dict[str, list[float]]]:
    """Ours and the SDK on a fresh simulator with these durations: the rows (model and
    all, cold and warm) and every task's lateness (seconds)."""
    config = SimulatorConfig(durations=durations, starting_balance_cents=10**9, seed=1)
    with SimulatorServer(config) as server:
        noticed = asyncio.run(run_waves(server, models, waves, per_wave))
        tasks = server.simulator.tasks
        polls: dict[str, int] = {n.task_id: 0 for n in noticed}
        for request in server.simulator.requests:
            if (
                request.method == "GET"
                and request.task_id in polls
                and "/files/" not in request.path
            ):
                polls[request.task_id] += 1

    def late(n: Noticed) -> float:
        task = tasks[n.task_id]
        return n.at - (task.created_at + task.duration)

    rows: dict[str, dict[str, Summary]] = {}
    for model in (*models, "all"):
        for stage, waves_in in (("cold", {0}), ("warm", set(range(1, waves)))):
            for who in ("ours", "sdk"):
                picked = [
                    n
                    for n in noticed
                    if n.client == who and n.wave in waves_in and model in (n.model, "all")
                ]
                rows.setdefault(f"{model} {stage}", {})[who] = summarize(
                    [late(n) for n in picked], [polls[n.task_id] for n in picked]
                )
    lateness = {
        f"{who} {stage}": sorted(
            round(late(n), 4)
            for n in noticed
            if n.client == who and (n.wave == 0) == (stage == "cold")
        )
        for who in ("ours", "sdk")
        for stage in ("cold", "warm")
    }
    return {
        name: {who: s.as_dict() for who, s in row.items()} for name, row in rows.items()
    }, lateness
