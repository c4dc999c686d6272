"""When to ask a task's status next.

The official SDK asks every 2 s, so it sees a finished task ~1 s late on average and
spends a request per 2 s of waiting. Here each model's duration is learned from the
tasks the client has seen (a running mean and spread), and the polls are spent where a
finish is likely: one at the early edge of that window, then small steps across it,
then backing off in proportion to the elapsed time if the task runs long.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .catalog import MODELS

MIN_STEP = 0.2  # seconds: no two polls closer than this
MAX_STEP = 2.0  # seconds: inside the window, never coarser than the official SDK's interval
MAX_INTERVAL = 10.0  # seconds: a long-running task is still polled this often
STEPS_PER_WINDOW = 4  # polls spent across the likely-finish window
LONG_RUN_FRACTION = 0.2  # past the window, poll every 20% of the elapsed time
_PRIOR_SPREAD = 0.35  # before any observation, assume ±35% around the prior
_MIN_SPREAD_FRACTION = 0.04
_DEFAULT_PRIOR_SECONDS = 10.0


@dataclass
class _Estimate:
    mean: float
    spread: float  # mean absolute deviation, seconds
    observations: int = 0


class DurationStats:
    """Learned task durations per model, shared by every wait of a client (or app).

    Holds timings only, nothing secret, so one instance may serve many users' clients.
    """

    def __init__(self, priors: Mapping[str, float] | None = None) -> None:
        seconds = priors or {name: info.typical_seconds for name, info in MODELS.items()}
        self._estimates = {
            model: _Estimate(mean=value, spread=value * _PRIOR_SPREAD)
            for model, value in seconds.items()
        }

    def window(self, model: str) -> tuple[float, float]:
        """(earliest, latest) likely finish, in seconds after submission."""
        estimate = self._estimate(model)
        return max(0.0, estimate.mean - 2 * estimate.spread), estimate.mean + 2 * estimate.spread

    def observe(self, model: str, seconds: float) -> None:
        """Fold in one task's duration: fast at first, steadier as evidence accumulates.

        The first observation replaces the prior mean outright. The spread is measured
        against the updated mean, so a wrong prior counts as a wrong guess, not as
        evidence that durations vary widely.
        """
        estimate = self._estimate(model)
        weight = max(0.2, 1 / (estimate.observations + 1))
        estimate.mean += weight * (seconds - estimate.mean)
        deviation = abs(seconds - estimate.mean)
        spread_weight = max(0.2, 1 / (estimate.observations + 2))
        estimate.spread += spread_weight * (deviation - estimate.spread)
        estimate.spread = max(estimate.spread, estimate.mean * _MIN_SPREAD_FRACTION, 0.05)
        estimate.observations += 1

    def _estimate(self, model: str) -> _Estimate:
        if model not in self._estimates:
            prior = max((e.mean for e in self._estimates.values()), default=_DEFAULT_PRIOR_SECONDS)
            self._estimates[model] = _Estimate(mean=prior, spread=prior * _PRIOR_SPREAD)
        return self._estimates[model]


def poll_step(window: tuple[float, float]) -> float:
    """The interval between polls inside the likely-finish window."""
    early, late = window
    return min(MAX_STEP, max(MIN_STEP, (late - early) / STEPS_PER_WINDOW))


def finish_estimate(not_done_at: float, done_at: float, step: float) -> float:
    """When a task finished, from the last poll that saw it running and the first that saw
    it done. A wide bracket (the first poll found it done) means it finished shortly before
    that poll if our window is right, and the next estimate moves the window earlier if not.
    """
    return max((not_done_at + done_at) / 2, done_at - step)


def next_poll_delay(elapsed: float, window: tuple[float, float]) -> float:
    """Seconds to wait before the next status request, `elapsed` seconds into a task."""
    early, late = window
    step = poll_step(window)
    if elapsed < early:
        return max(MIN_STEP, early - elapsed)
    if elapsed < late:
        return step
    return min(MAX_INTERVAL, max(step, LONG_RUN_FRACTION * elapsed))
