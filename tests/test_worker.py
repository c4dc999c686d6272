"""The RunAPI worker process: a run's tasks go through it as through an in-process client.

A real child process (`python -m runapi_ui.runapi.worker`) and a real simulator on loopback.
The playground's own tests (test_app, test_browser, ...) go through it too: it is on
by default.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from runapi_ui.runapi import errors
from runapi_ui.runapi.client import GenerationRequest, Phase, RunAPIClient, TaskUpdate
from runapi_ui.runapi.polling import DurationStats
from runapi_ui.runapi.simulator import SimulatorServer, image_digest
from runapi_ui.runapi.worker import TaskWorker, WorkerClient
from runapi_ui.runs.access import Backend, KeySource
from runapi_ui.runs.playground import Playground
from runapi_ui.runs.quota import limits_from
from runapi_ui.runs.settings import Settings, settings_from
from runapi_ui.storage.images import ImageStore
from tests.conftest import fast_durations
from tests.test_runs import creates, status_reads

KEY = "sk-worker-7d41c2e9a0"
MODEL = "imagen-4-fast"
REQUEST = GenerationRequest(prompt="a heron in the reeds", model=MODEL, seed=11)


@pytest.fixture
def stats() -> DurationStats:
    return fast_durations()


@pytest.fixture
async def worker(stats: DurationStats) -> AsyncIterator[TaskWorker]:
    worker = TaskWorker({"live": stats})
    yield worker
    worker.stop()


def client_of(worker: TaskWorker, server: SimulatorServer, key: str = KEY) -> WorkerClient:
    return worker.client(key, server.url, deadline=20.0, stats="live")


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Until `condition()` holds (the simulator is another thread: look, don't await)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_a_task_goes_through_the_worker_with_its_updates_and_what_it_taught(
    worker, stats, make_simulator
) -> None:
    server = make_simulator(time_scale=0.05, api_keys=frozenset({KEY}))
    worker.start()  # as the app does when it starts serving
    started = worker.pid
    client = client_of(worker, server)
    updates: list[TaskUpdate] = []

    task = await client.submit(REQUEST)
    result = await client.wait(task, on_update=updates.append)

    assert result.task_id == task.id == server.simulator.tasks[task.id].id
    image = result.images[0]
    assert server.simulator.served_images[image_digest(image.data)] == task.id
    assert (image.width, image.height, image.format) == (1024, 1024, "PNG")
    phases = [update.phase for update in updates]
    assert phases[-2:] == [Phase.DOWNLOADING, Phase.COMPLETED], phases
    # The worker learned the task's duration, and the app's own estimates heard of it.
    assert stats.observations(MODEL) == 1
    assert worker.pid == started, "the child started ahead was not the one used"
    await client.aclose()
    assert worker.pending == 0


async def test_errors_cross_over_with_their_kind_and_their_fields(worker, make_simulator) -> None:
    server = make_simulator(api_keys=frozenset({KEY}), faults="task_fail")
    client = client_of(worker, server)
    task = await client.submit(REQUEST)
    with pytest.raises(errors.TaskFailedError) as failed:
        await client.wait(task)
    assert failed.value.task_id == task.id
    assert failed.value.reason == server.simulator.config.fail_reason
    assert "not charged" in failed.value.message

    with pytest.raises(errors.AuthenticationError) as refused:
        await client_of(worker, server, key="sk-not-a-key-of-theirs").submit(REQUEST)
    assert refused.value.status == 401
    with pytest.raises(errors.ValidationError) as invalid:
        await client.submit(GenerationRequest(prompt=" ", model=MODEL))
    assert invalid.value.field == "prompt"


@pytest.mark.parametrize(
    "error",
    [
        errors.TaskFailedError("It failed.", task_id="t-1", reason="blocked", status=200),
        errors.TaskTimeoutError("Too slow.", task_id="t-2"),
        errors.RateLimitError("Slow down.", retry_after=3.0, status=429, request_id="r-9"),
        errors.ValidationError("Bad ratio.", field="aspect_ratio", status=422),
        errors.RunAPIError("Plain.", detail="what the service said"),
    ],
)
def test_every_error_survives_the_trip_between_processes(error: errors.RunAPIError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error) and vars(copy) == vars(error)


async def test_cancelling_a_wait_stops_its_polling_in_the_worker(worker, make_simulator) -> None:
    server = make_simulator(api_keys=frozenset({KEY}), faults="stuck")
    client = client_of(worker, server)
    task = await client.submit(REQUEST)
    waiting = asyncio.create_task(client.wait(task))
    await until(lambda: status_reads(server) >= 2)

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting  # ends once the worker has stopped the wait: Stop is exact
    seen = len(server.simulator.requests)
    await asyncio.sleep(1.0)  # fast_durations() polls every 0.2 s: five polls' time
    assert len(server.simulator.requests) == seen, "the worker kept polling after the cancel"
    assert worker.pending == 0
    await client.aclose()


async def test_a_wait_is_taken_up_by_a_new_worker_when_the_old_one_dies(
    worker, make_simulator
) -> None:
    """A task RunAPI bills is not lost with a process: its wait resumes by id."""
    server = make_simulator(time_scale=0.3, api_keys=frozenset({KEY}))  # about 1.4 s
    client = client_of(worker, server)
    task = await client.submit(REQUEST)
    waiting = asyncio.create_task(client.wait(task))
    await until(lambda: status_reads(server) >= 1)
    first = worker.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)

    result = await asyncio.wait_for(waiting, 20)
    assert result.task_id == task.id
    assert server.simulator.served_images[image_digest(result.images[0].data)] == task.id
    assert creates(server) == 1, "the task was created again"
    assert worker.pid not in (None, first)
    await client.aclose()


async def test_the_key_is_in_no_command_line_and_no_environment(worker, make_simulator) -> None:
    server = make_simulator(api_keys=frozenset({KEY}))
    client = client_of(worker, server)
    await client.wait(await client.submit(REQUEST))
    proc = Path("/proc") / str(worker.pid)
    assert KEY.encode() not in (proc / "cmdline").read_bytes()
    assert KEY.encode() not in (proc / "environ").read_bytes()
    assert KEY not in repr(client)
    await client.aclose()


def test_the_worker_can_be_turned_off(tmp_path: Path) -> None:
    """RUNAPI_UI_WORKER=off: RunAPI's traffic stays in the app's process."""
    assert settings_from([], {}).worker is True
    off = settings_from([], {"RUNAPI_UI_WORKER": "off"})
    assert off.worker is False
    settings = Settings(worker=False, data_dir=tmp_path, images_per_hour=0)
    playground = Playground(settings, ImageStore(tmp_path), None, limits=limits_from(settings))
    assert playground.worker is None
    backend = Backend(KEY, "http://127.0.0.1:9", KeySource.VISITOR)
    assert isinstance(playground.task_client_for(backend), RunAPIClient)
