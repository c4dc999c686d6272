"""Runs that a retried request attaches to, so a client's retry does not pay twice.

The `openai` package retries a request whose connection dropped; RunAPI's tasks, once
created, are paid whether or not anyone waits for them. So the images endpoints
(generations and edits) key each run by who asked and what they asked for (an edit's
source files by a hash of their bytes), and a retry finds the run of its first attempt,
still running or finished, instead of starting new tasks (or uploading again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .registry import Run, RunStatus

log = logging.getLogger(__name__)

RunKey = tuple[str, ...]


@dataclass
class _Shared:
    """One run and who waits for it."""

    started: asyncio.Task[Run]
    explicit: bool  # keyed by the caller's Idempotency-Key
    watchers: int = 0
    answered: bool = False  # its images reached a caller
    idle_since: float | None = None  # monotonic, while no one waits
    stop_timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class SharedRuns:
    """Runs by key (the caller, the request, and its Idempotency-Key if it sent one).

    A request attaches to the run of its key while that run is running, or after it
    finished (for `replay_seconds`) if its answer never reached anyone (a dropped
    connection). Under an explicit Idempotency-Key it replays even a delivered answer.
    Otherwise, once the images were delivered, the same request again is a new
    generation. A failed or stopped run is never reused: it cost nothing, and a retry
    may succeed.

    A run nobody waits for any more is stopped after `grace_seconds`, unless a retry
    attaches first (the `openai` package retries within about a second).
    """

    def __init__(
        self, *, grace_seconds: float = 10.0, replay_seconds: float = 600.0, max_kept: int = 1000
    ) -> None:
        self.grace_seconds = grace_seconds
        self.replay_seconds = replay_seconds
        self.max_kept = max_kept
        self._runs: dict[RunKey, _Shared] = {}

    def __len__(self) -> int:
        return len(self._runs)

    async def attach(
        self, key: RunKey, start: Callable[[], Awaitable[Run]], *, explicit: bool
    ) -> Run:
        """The run for `key`: a reusable one, or a new one from `start()` (whose refusal
        is raised here). Every run returned must be handed back with `detach`."""
        self._sweep()
        shared = self._runs.get(key)
        if shared is None or not self._reusable(shared):
            shared = _Shared(asyncio.ensure_future(start()), explicit=explicit)
            self._runs[key] = shared
        shared.watchers += 1
        shared.idle_since = None
        if shared.stop_timer is not None:
            shared.stop_timer.cancel()
            shared.stop_timer = None
        try:
            # Shielded: a caller cancelled while the run starts must not cancel the start
            # that a retry may be waiting on too.
            return await asyncio.shield(shared.started)
        except BaseException:
            self._leave(key, shared)
            raise

    def detach(self, key: RunKey, run: Run, *, answered: bool) -> None:
        """This caller stops waiting: it got its answer (`answered`), or it went away."""
        shared = self._runs.get(key)
        if shared is None or not shared.started.done() or shared.started.result() is not run:
            return
        shared.answered = shared.answered or answered
        self._leave(key, shared)

    def _leave(self, key: RunKey, shared: _Shared) -> None:
        shared.watchers -= 1
        if shared.watchers > 0:
            return
        shared.idle_since = time.monotonic()
        if shared.started.done():
            self._settle(key, shared)
        else:  # its caller left while it was starting
            shared.started.add_done_callback(lambda _: self._settle(key, shared))

    def _settle(self, key: RunKey, shared: _Shared) -> None:
        """Nobody waits for this run: forget it, keep it for a retry, or stop it soon."""
        if shared.watchers > 0 or self._runs.get(key) is not shared:
            return
        if not self._reusable(shared):
            del self._runs[key]
        elif shared.started.result().status is RunStatus.RUNNING:
            loop = asyncio.get_running_loop()
            shared.stop_timer = loop.call_later(self.grace_seconds, self._stop_unwatched, key)

    def _stop_unwatched(self, key: RunKey) -> None:
        shared = self._runs.get(key)
        if shared is None or shared.watchers > 0:
            return
        shared.stop_timer = None
        run = shared.started.result()
        if run.status is not RunStatus.RUNNING:
            return  # it finished meanwhile: kept for a retry until it expires
        del self._runs[key]
        log.info("run %s: its caller left and did not come back; stopping it", run.id[:6])
        run.cancel()

    def _reusable(self, shared: _Shared) -> bool:
        if not shared.started.done():
            return True  # still starting: the same request, arriving twice at once
        if shared.started.cancelled() or shared.started.exception() is not None:
            return False  # refused before anything was sent
        run = shared.started.result()
        if run.status is RunStatus.RUNNING:
            return True
        if run.status not in (RunStatus.DONE, RunStatus.PARTIAL):
            return False
        return shared.explicit or not shared.answered

    def _sweep(self) -> None:
        """Forget idle runs past `replay_seconds`, and the oldest idle ones past `max_kept`;
        never one whose stop is pending (forgetting it would leave it polling)."""
        now = time.monotonic()
        idle = sorted(
            (
                (shared.idle_since, key)
                for key, shared in self._runs.items()
                if shared.idle_since is not None and shared.stop_timer is None
            ),
        )
        excess = max(0, len(self._runs) - self.max_kept)
        for index, (since, key) in enumerate(idle):
            if index < excess or now - since > self.replay_seconds:
                del self._runs[key]
