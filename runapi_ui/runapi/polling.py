"""When to ask a task's status next: polls placed where finishes are likely.

The official SDK asks right after creating a task, then every 2 s, so it notices a
finished task about 1 s late on average. Here each model keeps a bounded sample of how
long its recent tasks took, with the catalog's figure as a wide prior until there are
enough, and a wait places its polls at quantiles of that distribution: each covers an
equal share of the finishes still ahead. Their number is a budget no larger than the
SDK's: k polls at equal shares cost (k + 1) / 2 on average, and k is chosen so that
stays within 90% of what the SDK (one request, then one per 2 s) spends on the same
durations. A task that outlives everything seen is polled with proportional backoff.
A service's own hint (an expected finish or a progress figure, read by
`expected_finish`) places the next poll instead; a `Retry-After` is the client's to obey.

A prior can be far off (a freshly started app knows nothing of today's durations), so
a task started before its model has `COLD_OBSERVATIONS` finishes seen never has a poll
later than the SDK's next one (2 s apart): it is noticed no later than the SDK would.
Once a couple of finishes all fall outside the prior's span, the prior is dropped: the
sample alone places the polls, whatever the durations.

Finishes are only ever seen between two polls: the last that saw the task running and
the first that saw it done. Each is taken at the middle of that bracket and spread over
the usual bracket width (wider while the sample is small, so the gaps between a few
observations still get polls). Times are seconds after the task's submission.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .catalog import MODELS

SDK_INTERVAL = 2.0  # seconds: the official SDK's fixed poll interval, our budget's unit
BUDGET_SHARE = 0.9  # of the SDK's average status requests for the same durations
MIN_FIRST_DELAY = 0.05  # seconds after submission: the earliest first poll
# Seconds: no two polls of a task closer than this. Small, because the brackets a wave
# of tasks learns from are never narrower than it, and a task noticed at its second
# poll is up to one bracket late.
MIN_STEP = 0.05
MAX_INTERVAL = 10.0  # seconds: a long-running task is still polled this often
LONG_RUN_FRACTION = 0.03  # past every likely finish, wait 3% of the elapsed time
OVERRUN_FRACTION = 0.3  # ...or 30% of the time already spent past every likely finish
SAMPLE_SIZE = 32  # observations kept per model: recent enough to follow a drift
COLD_OBSERVATIONS = 2  # below this many finishes seen, never poll later than the SDK
ENOUGH_OBSERVATIONS = 8  # from this many on, the prior no longer counts
PRIOR_WEIGHT = 2.0  # until then the prior counts as this many observations
PRIOR_SPAN = (0.5, 1.5)  # the prior: evenly from half to 1.5x the catalog's typical seconds
FIRST_POLL_SHARE = 0.2  # a first poll that found the task done: keep the last 20% of its wait
MOSTLY_LATE = 0.5  # first polls finding most tasks done are too late...
LATE_EVIDENCE = 2  # ...once this many tasks were seen...
LATE_LOOK_BACK = 0.5  # ...and their finishes are put in the last half of that wait
SMOOTHING_SAMPLE = 16  # below this many observations, each is spread wider than its bracket
_SDK_PROBES = 64  # quantiles at which the SDK's cost is averaged
_MIN_WIDTH = 0.01  # seconds: an observation is never a single point
_DEFAULT_PRIOR_SECONDS = 10.0

# Fields a status answer may use for the seconds still to go, or the share done.
_REMAINING_FIELDS = (
    "eta_seconds",
    "eta",
    "estimated_seconds_remaining",
    "remaining_seconds",
    "estimated_seconds",
    "estimated_time",
)
_PROGRESS_FIELDS = ("progress", "percent", "percentage")
_MAX_HINT_SECONDS = 86400.0


def sdk_requests(seconds: float) -> int:
    """Status requests the official SDK sends for a task that takes `seconds`."""
    return 1 + math.ceil(max(0.0, seconds) / SDK_INTERVAL - 1e-9)


def poll_budget(distribution: Distribution) -> int:
    """How many polls a wait may place across `distribution`.

    k polls at equal shares cost (k + 1) / 2 on average; k keeps that within
    `BUDGET_SHARE` of the SDK's average for the same durations.
    """
    return max(1, math.floor(2 * BUDGET_SHARE * distribution.sdk_requests - 1))


@dataclass(frozen=True)
class Span:
    """A share (`weight`) of the likely finishes, spread evenly from `start` to `end` s."""

    start: float
    end: float
    weight: float = 1.0


class Distribution:
    """A duration distribution made of evenly spread spans: its CDF is piecewise linear."""

    def __init__(self, spans: Sequence[Span]) -> None:
        spans = [s for s in spans if s.weight > 0]
        if not spans:
            raise ValueError("a distribution needs at least one span with weight")
        total = sum(s.weight for s in spans)
        # Between two consecutive span ends the CDF is a straight line: keep only the
        # corners. Each span adds weight / width to its slope from its start to its end,
        # so one sweep over the corners builds it (rebuilt after every finish a crowd sees).
        slope_changes: dict[float, float] = {}
        for span in spans:
            end = max(span.end, span.start + _MIN_WIDTH)
            rate = span.weight / total / (end - span.start)
            slope_changes[span.start] = slope_changes.get(span.start, 0.0) + rate
            slope_changes[end] = slope_changes.get(end, 0.0) - rate
        self._points = sorted(slope_changes)
        self._shares = [0.0]
        slope = 0.0
        for before, point in itertools.pairwise(self._points):
            slope = max(0.0, slope + slope_changes[before])  # no rounding below zero
            self._shares.append(min(1.0, self._shares[-1] + slope * (point - before)))
        self._shares[-1] = 1.0
        probes = [self.seconds_at((i + 0.5) / _SDK_PROBES) for i in range(_SDK_PROBES)]
        # What the official SDK would spend on tasks of these durations, on average.
        self.sdk_requests = sum(sdk_requests(seconds) for seconds in probes) / _SDK_PROBES

    @property
    def low(self) -> float:
        return self._points[0]

    @property
    def high(self) -> float:
        return self._points[-1]

    def share_by(self, seconds: float) -> float:
        """The share of tasks finished by `seconds` (the CDF)."""
        return _interpolate(seconds, self._points, self._shares)

    def seconds_at(self, share: float) -> float:
        """The duration by which `share` of the tasks have finished (the quantile)."""
        return _interpolate(share, self._shares, self._points)


def _interpolate(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """y at x on the broken line through (xs, ys); xs ascending, flat beyond its ends."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    index = bisect.bisect_left(xs, x)
    x0, x1, y0, y1 = xs[index - 1], xs[index], ys[index - 1], ys[index]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class Finish:
    """One task's end as polling saw it: still running `after` s in (None: no poll saw it
    running), done `by` s in."""

    after: float | None
    by: float

    @property
    def seen_running(self) -> bool:
        return self.after is not None


class DurationStats:
    """Observed task durations per model, shared by every wait of a client (or an app).

    Holds timings only, nothing secret, so one instance may serve many users' clients.
    `priors` maps a model to its typical seconds (default: the catalog's).
    """

    def __init__(
        self, priors: Mapping[str, float] | None = None, *, sample_size: int = SAMPLE_SIZE
    ) -> None:
        typical = priors or {name: info.typical_seconds for name, info in MODELS.items()}
        self._priors = dict(typical)
        self._sample_size = sample_size
        self._observed: dict[str, deque[Finish]] = {}
        self._estimates: dict[str, Distribution] = {}  # rebuilt only after an observation
        # Told of every observation: the RunAPI worker process tells the app's copy.
        self.listener: Callable[[str, float | None, float], object] | None = None

    def observe(self, model: str, after: float | None, by: float) -> None:
        """A task of `model` was seen running `after` s into it (None: never) and done `by` s."""
        sample = self._observed.setdefault(model, deque(maxlen=self._sample_size))
        sample.append(Finish(None if after is None else max(0.0, after), by))
        self._estimates.pop(model, None)
        if self.listener is not None:
            self.listener(model, after, by)

    def observations(self, model: str) -> int:
        return len(self._observed.get(model, ()))

    def distribution(self, model: str) -> Distribution:
        """What is known of `model`'s durations: the sample, plus the prior while the sample
        is small, unless the sample already shows the prior far too long."""
        if model not in self._estimates:
            finishes = list(self._observed.get(model, ()))
            spans = _estimate(finishes)
            typical = self._priors.get(model)
            if typical is None:  # an unknown model: the slowest known one is the safe guess
                typical = max(self._priors.values(), default=_DEFAULT_PRIOR_SECONDS)
            prior = Span(typical * PRIOR_SPAN[0], typical * PRIOR_SPAN[1], PRIOR_WEIGHT)
            if len(finishes) < ENOUGH_OBSERVATIONS and not _refutes(finishes, prior):
                spans.append(prior)
            self._estimates[model] = Distribution(spans)
        return self._estimates[model]

    def window(self, model: str) -> tuple[float, float]:
        """(earliest, latest) likely finish, in seconds after submission."""
        distribution = self.distribution(model)
        return distribution.low, distribution.high


def _refutes(finishes: Sequence[Finish], prior: Span) -> bool:
    """Whether the finishes seen show the prior wrong: first polls find most tasks done
    (it is far too long), or a couple of finishes all lie outside it (too short or long)."""
    outside = all(f.by < prior.start or (f.after or 0.0) > prior.end for f in finishes)
    return _mostly_late(finishes) or (len(finishes) >= COLD_OBSERVATIONS and outside)


def _mostly_late(finishes: Sequence[Finish]) -> bool:
    """Whether first polls find most tasks already done: the schedule starts far too late."""
    late = sum(not finish.seen_running for finish in finishes)
    return len(finishes) >= LATE_EVIDENCE and late > MOSTLY_LATE * len(finishes)


def _estimate(finishes: Sequence[Finish]) -> list[Span]:
    """Where the finishes lie: each seen between two polls at the middle of that bracket,
    spread over the usual bracket width (wider while the sample is small).

    Evenly over their own brackets instead, the rare wide ones (a long step past
    everything seen) would widen the distribution, hence the next brackets, and so on.

    A task found done at its first poll only says it ended by then. Its weight goes to
    the finishes seen between polls before that. Where there are none, it goes to the
    last `FIRST_POLL_SHARE` of its wait (first polls sit at the first share of the
    likely finishes, so it ended just before) or, when first polls find most tasks
    done (the prior is far too long), to the last `LATE_LOOK_BACK` of the earliest of
    their first polls. The next first poll then comes much earlier, though not so early
    that a well-placed first poll which found a whole wave just done (all 50 tasks of a
    crowd share one schedule) throws away where the finishes were.
    """
    if not finishes:
        return []
    between = [f for f in finishes if f.after is not None]
    widths = sorted(f.by - f.after for f in between if f.after is not None)
    width = widths[len(widths) // 2] if widths else 0.0
    width *= max(1.0, math.sqrt(SMOOTHING_SAMPLE / len(finishes)))
    middles = [(f.after + f.by) / 2 for f in between if f.after is not None]
    weights = [1.0] * len(middles)
    alone: list[Finish] = []
    for finish in finishes:
        if finish.after is not None:
            continue
        earlier = [i for i, middle in enumerate(middles) if middle <= finish.by]
        for i in earlier:
            weights[i] += 1.0 / len(earlier)
        if not earlier:
            alone.append(finish)
    spans = [
        Span(max(0.0, middle - width / 2), middle + width / 2, weight)
        for middle, weight in zip(middles, weights, strict=True)
    ]
    if alone and _mostly_late(finishes):
        earliest_by = min(f.by for f in alone)
        spans.append(Span(earliest_by * (1 - LATE_LOOK_BACK), earliest_by, len(alone)))
    else:
        spans += [Span(f.by * (1 - FIRST_POLL_SHARE), f.by) for f in alone]
    return spans


class PollPlan:
    """One task's status requests: when the next goes, and what its finish teaches.

    The distribution is read afresh for every poll, so a wait learns from the tasks
    that finish while it runs (the other images of a run, other visitors' runs).
    """

    def __init__(self, stats: DurationStats, model: str, *, submitted_here: bool = True) -> None:
        self._stats = stats
        self.model = model
        # Waiting on a bare id, the wait's start stands in for the submission: a task
        # found done at the first poll may have ended long before, so it teaches nothing.
        self._submitted_here = submitted_here
        self.polls = 0
        self.last_poll: float | None = None  # when the latest poll saw the task running
        # Started before the model's durations were learned: held to the SDK's pace to
        # its end (what its wave's first finishes teach still places its polls).
        self._cold = stats.observations(model) < COLD_OBSERVATIONS

    def next_poll(self, expected_finish: float | None = None) -> float:
        """When to send the next status request; `expected_finish` is the service's hint."""
        since = self.last_poll if self.last_poll is not None else 0.0
        earliest = since + MIN_STEP if self.polls else MIN_FIRST_DELAY
        if self._cold:  # the prior may be far off: never past the SDK's next poll (0, 2, 4 s…)
            latest = SDK_INTERVAL * (math.floor(since / SDK_INTERVAL) + 1)
            return max(earliest, min(latest, self._planned(since, earliest, expected_finish)))
        return self._planned(since, earliest, expected_finish)

    def _planned(self, since: float, earliest: float, expected_finish: float | None) -> float:
        """The next poll after `since` as the distribution (or the service's hint) places it."""
        if expected_finish is not None:
            return max(earliest, expected_finish)
        distribution = self._stats.distribution(self.model)
        remaining = poll_budget(distribution) - self.polls
        if since < distribution.high and remaining > 0:
            # Split the finishes still ahead into `remaining` equal shares; poll at the first.
            done = distribution.share_by(since)
            target = distribution.seconds_at(done + (1.0 - done) / remaining)
            if since >= distribution.low:  # among likely finishes: no coarser than the SDK
                target = min(target, since + max(SDK_INTERVAL, LONG_RUN_FRACTION * since))
        else:  # it outlived everything seen: back off in proportion to the time spent,
            # and to the time past what was seen (fine steps just past it, where a late
            # finish most likely is, then fast-growing ones: a stuck task costs little)
            overrun = since - distribution.high
            step = max(LONG_RUN_FRACTION * since, OVERRUN_FRACTION * overrun)
            target = since + min(MAX_INTERVAL, step)
        return max(earliest, target)

    def running_at(self, seconds: float) -> None:
        """A poll evaluated `seconds` into the task found it still running."""
        self.polls += 1
        self.last_poll = seconds

    def done_at(self, seconds: float) -> None:
        """A poll evaluated `seconds` into the task found it ended: learn its duration."""
        self.polls += 1
        if self.model and (self._submitted_here or self.last_poll is not None):
            self._stats.observe(self.model, self.last_poll, seconds)


def expected_finish(answer: Mapping[str, Any], elapsed: float) -> float | None:
    """When a status answer says the task will end, in seconds after submission, if it says.

    Reads a remaining-seconds field first, then a progress share (0-1, or a percentage),
    extrapolated from the time spent so far. Anything absent or absurd is None.
    """
    for name in _REMAINING_FIELDS:
        remaining = _number(answer.get(name))
        if remaining is not None and 0 <= remaining <= _MAX_HINT_SECONDS:
            return elapsed + remaining
    for name in _PROGRESS_FIELDS:
        progress = _number(answer.get(name))
        if progress is None or progress <= 0:
            continue
        share = progress / 100 if progress > 1 else progress
        if 0.01 <= share < 1 and elapsed / share <= _MAX_HINT_SECONDS:
            return elapsed / share
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
