"""Runs that outlive the browser: a generation lives on the server, not in the request.

A page reload or a dropped connection ends the Gradio event that started a run, but
RunAPI still finishes (and bills) its tasks. So every run is an asyncio task of its own,
kept in a `RunRegistry` under an unguessable id; the page (or an agent) only watches it,
and a visitor who comes back attaches again by that id. Stop cancels a run for good.

The visitor's key is held by the run while it runs, in memory only, and dropped the
moment it ends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

from ..runapi.client import AnyRequest, GenerationResult, Phase, Task, TaskUpdate, UpdateCallback
from ..runapi.errors import UNEXPECTED_MESSAGE, RunAPIError
from ..runapi.files import UploadedFile
from ..runapi.polling import DurationStats
from ..storage.images import ImageStore, SavedImage
from .access import Backend
from .remixing import upload_kept, without_url_queries

log = logging.getLogger(__name__)

UPDATE_TICK = 0.25  # seconds between progress refreshes while nothing else happens
STOP_SECONDS = 5.0  # the longest a Stop waits for a run to wind down

_PHASE_LABELS = {
    Phase.SUBMITTED: "Queued",
    Phase.QUEUED: "Queued",
    Phase.PROCESSING: "Generating",
    Phase.DOWNLOADING: "Downloading",
}
# How far along an image is, for the bar, at the start of each phase.
_PHASE_FLOOR = {Phase.SUBMITTED: 0.05, Phase.QUEUED: 0.08, Phase.PROCESSING: 0.12}
_FINAL = {Phase.COMPLETED, Phase.FAILED}


class TaskClient(Protocol):
    """What a run needs of a client: a `RunAPIClient`, or one in the worker process."""

    async def submit(self, request: AnyRequest) -> Task: ...

    async def upload_kept(self, paths: Sequence[Path]) -> tuple[UploadedFile, ...]: ...

    async def wait(
        self, task: Task | str, *, on_update: UpdateCallback | None = None, model: str = ...
    ) -> GenerationResult: ...

    async def aclose(self) -> None: ...


ClientFactory = Callable[[Backend], TaskClient]
FinishCallback = Callable[["Run"], Awaitable[None]]


class RunStatus(str, Enum):
    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partly failed"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass
class Job:
    """One image of a run: its request, then its task, then its image or its error."""

    request: AnyRequest
    task_id: str | None = None  # known from the start when a run resumes a task
    phase: Phase = Phase.SUBMITTED
    image: SavedImage | None = None
    error: RunAPIError | None = None
    seconds: float | None = None  # how long the image took, once it ended
    # Live prices and real costs: the price when the run began, and what RunAPI says it
    # charged once the task completed (None: it did not say; 0 if refunded).
    estimate_usd: float = 0.0
    charged_usd: float | None = None


@dataclass
class Run:
    """A generation of one or more images (a compare is one run of three models)."""

    jobs: list[Job]
    backend: Backend | None = field(repr=False)  # dropped when the run ends
    kind: str = "generate"  # or "compare", or "remix"
    sources: tuple[Path, ...] = ()  # a remix's kept sources (remixing.py), uploaded first
    id: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    created: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None  # monotonic
    stopped: bool = False
    is_demo: bool = False
    images: list[SavedImage] = field(default_factory=list)  # in the order they landed
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _shown: float = 0.0

    @property
    def total(self) -> int:
        return len(self.jobs)

    @property
    def errors(self) -> list[RunAPIError]:
        return [job.error for job in self.jobs if job.error is not None]

    def failures(self) -> list[str]:
        """What went wrong, once per distinct message; a compare names each failing model."""
        messages = [
            f"{job.request.model}: {job.error.message}"
            if self.kind == "compare"
            else job.error.message
            for job in self.jobs
            if job.error is not None
        ]
        return list(dict.fromkeys(messages))

    @property
    def is_finished(self) -> bool:
        return self.ended is not None

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    @property
    def status(self) -> RunStatus:
        if not self.is_finished:
            return RunStatus.RUNNING
        if self.stopped:
            return RunStatus.STOPPED
        if not self.errors:
            return RunStatus.DONE
        return RunStatus.PARTIAL if self.images else RunStatus.FAILED

    @property
    def requests(self) -> list[AnyRequest]:
        return [job.request for job in self.jobs]

    @property
    def task_ids(self) -> list[str | None]:
        return [job.task_id for job in self.jobs]

    def describe(self, *, seconds: bool = True) -> str:
        """The progress bar's words: a phase, the seconds (unless not), N of M done."""
        phase = self.current_phase
        if self.is_finished:
            label = self.status.value.capitalize()
        elif phase is not None:
            label = _PHASE_LABELS[phase]
        else:
            label = "Finishing"
        elapsed = f" · {self.elapsed:.0f} s" if seconds else ""
        return f"{label}{elapsed} · {len(self.images)} of {self.total} images done"

    @property
    def current_phase(self) -> Phase | None:
        """The earliest phase an image of the run is still in; None once all have ended."""
        waiting = [job.phase for job in self.jobs if job.phase not in _FINAL]
        return min(waiting, key=list(Phase).index) if waiting else None

    def fraction(self, durations: DurationStats | None = None) -> float:
        """Share of the run done, never going backwards."""
        parts = [self._job_fraction(job, durations) for job in self.jobs]
        self._shown = max(self._shown, min(sum(parts) / max(1, self.total), 0.99))
        return 1.0 if self.is_finished else self._shown

    def _job_fraction(self, job: Job, durations: DurationStats | None) -> float:
        if job.phase in _FINAL:
            return 1.0
        if job.phase is Phase.DOWNLOADING:
            return 0.95
        early, late = durations.window(job.request.model) if durations else (5.0, 15.0)
        expected = max(0.5, (early + late) / 2)
        floor = _PHASE_FLOOR.get(job.phase, 0.0)
        return max(floor, min(0.9, 0.12 + 0.78 * self.elapsed / expected))

    async def updates(self, tick: float | None = UPDATE_TICK) -> AsyncIterator[Run]:
        """This run after each change, and every `tick` seconds (None: only after changes);
        ends once it has finished."""
        while True:
            changed = self._changed
            yield self
            if self.is_finished:
                return
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), tick)

    async def changes(
        self,
        key: Callable[[Run], object],
        *,
        on_tick: Callable[[Run], object] | None = None,
        tick: float | None = UPDATE_TICK,
    ) -> AsyncIterator[Run]:
        """This run at first and each time `key(run)` differs from when it was last
        yielded, looked at after every change of the run and every `tick` seconds between
        (None: only after changes); `on_tick` sees the run at each of those looks.

        It ends once the run has, without yielding the end: the consumer says that once,
        after its loop (an answer, the page's last outputs), not twice.
        Cancelling the consumer (Stop) cancels the run; closing it (a reload) does not.
        """
        said: object = object()  # equal to no key: the first look always yields
        try:
            async for _ in self.updates(tick):
                if on_tick is not None:
                    on_tick(self)
                if self.is_finished:
                    return
                now = key(self)
                if now != said:
                    said = now
                    yield self
        except asyncio.CancelledError:
            await self.stop()
            raise

    def milestones(
        self, on_tick: Callable[[Run], object] | None = None, *, tick: float = UPDATE_TICK
    ) -> AsyncIterator[Run]:
        """This run each time a task is created or an image lands, until it ends; `on_tick`
        sees every change, and the run every `tick` seconds between (a progress bar)."""
        return self.changes(_milestone, on_tick=on_tick, tick=tick)

    async def finished(self) -> Run:
        async for _ in self.updates(tick=1.0):
            pass
        return self

    def cancel(self) -> None:
        """Stop: no more polling, and the run ends as stopped (its images so far stay)."""
        if self._task is not None and not self._task.done() and not self.is_finished:
            self.stopped = True
            self._task.cancel()

    async def stop(self) -> None:
        """Cancel, and return once the run has wound down: no request of it goes out after
        (its polling may live in the worker process, a message away)."""
        self.cancel()
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=STOP_SECONDS)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class RunRegistry:
    """Every run of this server, by id, until `keep_seconds` after it ended."""

    def __init__(
        self,
        store: ImageStore,
        client_for: ClientFactory,
        *,
        keep_seconds: float = 3600.0,
        max_finished: int = 2000,
    ) -> None:
        self.store = store
        self._client_for = client_for
        self.keep_seconds = keep_seconds
        self.max_finished = max_finished
        self._runs: dict[str, Run] = {}
        self._ended: deque[Run] = deque()  # finished runs, in the order they ended

    def start(
        self,
        requests: Sequence[AnyRequest],
        backend: Backend,
        *,
        kind: str = "generate",
        task_ids: Sequence[str | None] | None = None,
        on_finish: FinishCallback | None = None,
        sources: Sequence[Path] = (),
        estimates: Sequence[float] | None = None,
    ) -> Run:
        """Begin a run on the running event loop; `task_ids` resumes existing tasks; a
        remix's `sources` are uploaded on the run's key before its tasks are created;
        `estimates` is each image's price in USD."""
        self.sweep()
        ids = list(task_ids or [None] * len(requests))
        prices = list(estimates or [0.0] * len(requests))
        jobs = [
            Job(request, task_id, estimate_usd=price)
            for request, task_id, price in zip(requests, ids, prices, strict=True)
        ]
        run = Run(jobs, backend, kind=kind, sources=tuple(sources), is_demo=backend.is_demo)
        self._runs[run.id] = run
        run._task = asyncio.get_running_loop().create_task(self._execute(run, on_finish))
        return run

    def get(self, run_id: object) -> Run | None:
        return self._runs.get(run_id) if isinstance(run_id, str) else None

    def __len__(self) -> int:
        return len(self._runs)

    def sweep(self) -> None:
        """Forget runs that ended long ago, and the oldest past the bound: the first to
        end go first, so each start costs what it forgets, not a pass over them all."""
        now = time.monotonic()
        ended = self._ended
        while ended and (
            len(ended) > self.max_finished or now - (ended[0].ended or now) > self.keep_seconds
        ):
            del self._runs[ended.popleft().id]

    async def aclose(self) -> None:
        running = [run for run in self._runs.values() if run._task and not run._task.done()]
        for run in running:
            run.cancel()
        await asyncio.gather(*(run._task for run in running if run._task), return_exceptions=True)

    async def _execute(self, run: Run, on_finish: FinishCallback | None) -> None:
        backend = run.backend
        assert backend is not None
        client: TaskClient | None = None
        try:
            client = self._client_for(backend)
            if await self._uploaded(run, client):
                await asyncio.gather(*(self._one(run, job, client) for job in run.jobs))
        except asyncio.CancelledError:
            run.stopped = not run.is_finished  # a Stop after the last image changes nothing
        except Exception:  # a bug of ours must not leave the run hanging
            log.exception("unexpected failure in run %s", run.id[:6])
        finally:
            self._end(run)  # unless its last image did
            # Whoever watches hears of the end first: closing the connection waits.
            try:
                if on_finish is not None:
                    await on_finish(run)
            finally:
                if client is not None:
                    await client.aclose()

    def _end(self, run: Run) -> None:
        if run.is_finished:
            return
        for job in run.jobs:
            if job.phase not in _FINAL:
                job.phase = Phase.FAILED
        run.ended = time.monotonic()
        self._ended.append(run)
        run.backend = None  # the key goes with the run
        log.info(
            "run %s: %s, %d/%d images in %.1fs, demo=%s",
            run.id[:6],
            run.status.value,
            len(run.images),
            run.total,
            run.elapsed,
            run.is_demo,
        )
        run._notify()

    async def _uploaded(self, run: Run, client: TaskClient) -> bool:
        """A remix's sources uploaded and named in the requests still to be created
        (their URLs stay in memory); False, each image failing, if that went wrong."""
        creating = [job for job in run.jobs if job.task_id is None]
        if not run.sources or not creating:
            return True
        try:
            urls = await upload_kept(client, run.sources)
        except RunAPIError as error:
            for job in run.jobs:
                job.error, job.phase = _without_frames(error), Phase.FAILED
            return False
        for job in creating:
            job.request = replace(job.request, source_image_urls=urls)
        return True

    async def _one(self, run: Run, job: Job, client: TaskClient) -> None:
        def on_update(update: TaskUpdate) -> None:
            if update.phase in _FINAL:
                return  # said below, once its image is saved or its error known
            job.phase = update.phase
            run._notify()

        started = time.monotonic()
        try:
            if job.task_id is None:
                task = await client.submit(job.request)
                job.task_id = task.id
                on_update(TaskUpdate(task.id, Phase.SUBMITTED, 0.0, task.model))
                result = await client.wait(task, on_update=on_update)
            else:
                result = await client.wait(
                    job.task_id, on_update=on_update, model=job.request.model
                )
            image = await self.store.save(
                result.images[0], job.request, result.task_id, is_demo=run.is_demo
            )
            job.image = image
            job.charged_usd = result.charged_usd
            run.images.append(image)
            job.phase = Phase.COMPLETED
        except RunAPIError as error:
            job.error = _without_frames(error)
            job.phase = Phase.FAILED
        except Exception:
            log.exception("unexpected failure in an image of run %s", run.id[:6])
            job.error = RunAPIError(UNEXPECTED_MESSAGE)
            job.phase = Phase.FAILED
        finally:
            job.seconds = time.monotonic() - started
            if any(other.phase not in _FINAL for other in run.jobs):
                run._notify()
            else:  # the last image ends the run here and now: its news and the end are
                # one update (one progress message, one page refresh), a step sooner
                self._end(run)


def change_events(runs: Sequence[Run]) -> list[asyncio.Event]:
    """What `next_change` waits on: take them before looking at the runs, so a change
    between the look and the wait is not missed."""
    return [run._changed for run in runs]


async def next_change(events: Sequence[asyncio.Event], timeout: float) -> None:
    """Return once any of `events` is set (a run changed), or after `timeout` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def milestone(run: Run) -> tuple[object, ...]:
    """What changes when a task is created or an image lands, or the run ends."""
    return (*_milestone(run), run.is_finished)


def _milestone(run: Run) -> tuple[object, ...]:
    """What changes when a task is created or an image lands."""
    return (len(run.images), *run.task_ids)


def _without_frames(error: RunAPIError) -> RunAPIError:
    """The error as a finished run keeps it (for an hour): its message. Its traceback's
    frames, and those of the exception it replaced, would keep the client that holds the
    visitor's key, and the bytes of the image that broke, for as long."""
    error.__traceback__ = error.__context__ = error.__cause__ = None
    # What the history and the page show of it: never a (signed) source URL's query.
    error.message = without_url_queries(error.message)
    if error.detail:
        error.detail = without_url_queries(error.detail)
    error.args = (error.message,)
    return error
