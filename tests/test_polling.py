"""The polling schedule on its own: durations as a distribution, polls at its quantiles.

Time here is a number (seconds after submission), not a clock: `run_waves` plays tasks of
known durations against `PollPlan` the way a client would, so these tests are exact and
take milliseconds. The client's use of the schedule over real sockets is in
test_client.py; the same figures measured for real are the benchmark's (`python -m bench`).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import statistics
from dataclasses import dataclass

import pytest

from runapi_ui.runapi.catalog import MODELS
from runapi_ui.runapi.polling import (
    COLD_OBSERVATIONS,
    ENOUGH_OBSERVATIONS,
    LONG_RUN_FRACTION,
    MAX_INTERVAL,
    MIN_FIRST_DELAY,
    MIN_STEP,
    OVERRUN_FRACTION,
    PRIOR_SPAN,
    SAMPLE_SIZE,
    SDK_INTERVAL,
    Distribution,
    DurationStats,
    PollPlan,
    Span,
    expected_finish,
    poll_budget,
    sdk_requests,
)

# The issue's durations: evenly jittered, and not the catalog's priors (6, 10, 16 s).
RANGES = {"imagen-4-fast": (3.0, 5.0), "imagen-4": (5.0, 8.0), "imagen-4-ultra": (8.0, 12.0)}


@dataclass(frozen=True)
class Outcome:
    wave: int
    late: float  # seconds between the finish and the poll that saw it
    polls: int
    sdk_late: float  # the same for the official SDK: a poll at 0, then every 2 s
    sdk_polls: int


def run_waves(stats: DurationStats, model: str, durations: list[list[float]]) -> list[Outcome]:
    """Each inner list is a wave of tasks started together; polls go in time order, so a
    task that finishes teaches the ones still running (as in a client)."""
    outcomes = []
    for wave, wave_durations in enumerate(durations):
        plans = [PollPlan(stats, model) for _ in wave_durations]
        queue = [(plan.next_poll(), index) for index, plan in enumerate(plans)]
        heapq.heapify(queue)
        while queue:
            at, index = heapq.heappop(queue)
            plan, duration = plans[index], wave_durations[index]
            if at < duration:
                plan.running_at(at)
                heapq.heappush(queue, (plan.next_poll(), index))
                continue
            plan.done_at(at)
            sdk_seen = 2 * math.ceil(duration / 2)
            outcomes.append(
                Outcome(wave, at - duration, plan.polls, sdk_seen - duration, 1 + sdk_seen // 2)
            )
    return outcomes


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def waves(model: str, count: int, size: int, rng: random.Random) -> list[list[float]]:
    low, high = RANGES[model]
    return [[rng.uniform(low, high) for _ in range(size)] for _ in range(count)]


# --- the distribution -----------------------------------------------------------------


def test_a_distribution_is_its_spans_cdf_and_quantiles() -> None:
    # Three quarters evenly over 2-4 s, one quarter over 4-8 s.
    distribution = Distribution([Span(2, 4, 3), Span(4, 8, 1)])
    assert (distribution.low, distribution.high) == (2, 8)
    assert distribution.share_by(1) == 0 and distribution.share_by(9) == 1
    assert distribution.share_by(3) == pytest.approx(0.375)
    assert distribution.share_by(6) == pytest.approx(0.875)
    for share in (0.1, 0.375, 0.5, 0.75, 0.9):
        assert distribution.share_by(distribution.seconds_at(share)) == pytest.approx(share)
    with pytest.raises(ValueError):
        Distribution([Span(1, 2, 0)])


def test_the_sdk_cost_is_one_request_then_one_per_2_s() -> None:
    assert [sdk_requests(s) for s in (0.5, 2.0, 2.1, 4.0, 9.9)] == [2, 2, 3, 3, 6]
    # Evenly over 3-5 s the SDK sends 3 requests to half the tasks and 4 to the rest.
    distribution = Distribution([Span(3, 5)])
    assert distribution.sdk_requests == pytest.approx(3.5, abs=0.02)
    budget = poll_budget(distribution)
    assert (budget + 1) / 2 <= 0.9 * distribution.sdk_requests


def test_the_prior_is_wide_around_the_catalog_figure_until_enough_is_seen() -> None:
    stats = DurationStats()
    typical = MODELS["imagen-4"].typical_seconds
    assert stats.window("imagen-4") == pytest.approx(
        (typical * PRIOR_SPAN[0], typical * PRIOR_SPAN[1])
    )
    for _ in range(ENOUGH_OBSERVATIONS):
        stats.observe("imagen-4", 6.0, 6.2)
    low, high = stats.window("imagen-4")
    assert 5.0 < low < 6.0 and 6.2 < high < 7.5, "the prior no longer counts"
    assert stats.window("imagen-5") == stats.window("imagen-4-ultra") != stats.window("imagen-4")


def test_the_sample_is_bounded_so_old_durations_are_forgotten() -> None:
    stats = DurationStats()
    for _ in range(SAMPLE_SIZE):
        stats.observe("imagen-4-fast", 20.0, 20.5)
    for _ in range(SAMPLE_SIZE):
        stats.observe("imagen-4-fast", 3.0, 3.4)
    assert stats.observations("imagen-4-fast") == SAMPLE_SIZE
    assert stats.window("imagen-4-fast")[1] < 5.0


# --- where the polls go ------------------------------------------------------------------


def test_polls_split_the_likely_finishes_into_equal_shares() -> None:
    stats = DurationStats()
    for index in range(SAMPLE_SIZE):
        finish = 3.0 + 2.0 * index / (SAMPLE_SIZE - 1)  # evenly over 3-5 s
        stats.observe("imagen-4-fast", finish - 0.3, finish)
    distribution = stats.distribution("imagen-4-fast")
    budget = poll_budget(distribution)
    plan = PollPlan(stats, "imagen-4-fast")
    times = []
    while len(times) < budget:
        times.append(plan.next_poll())
        plan.running_at(times[-1])
    shares = [distribution.share_by(t) for t in times]
    assert shares == pytest.approx([(i + 1) / budget for i in range(budget)], abs=1e-6)
    assert times[0] > 2.5, "no poll is wasted long before any task finishes"
    assert all(b - a >= MIN_STEP for a, b in itertools.pairwise(times))


def test_a_task_that_outlives_everything_seen_is_polled_with_proportional_backoff() -> None:
    stats = DurationStats({"imagen-4": 1.0})
    for _ in range(COLD_OBSERVATIONS):  # past the cold start, where the SDK's pace is a cap
        stats.observe("imagen-4", 0.95, 1.05)
    plan = PollPlan(stats, "imagen-4")
    while True:
        at = plan.next_poll()
        if at > stats.window("imagen-4")[1]:
            break
        plan.running_at(at)
    high = stats.window("imagen-4")[1]
    steps = []
    while at < 300:
        plan.running_at(at)
        steps.append(plan.next_poll() - at)
        proportional = max(LONG_RUN_FRACTION * at, OVERRUN_FRACTION * (at - high))
        assert steps[-1] == pytest.approx(max(MIN_STEP, min(MAX_INTERVAL, proportional)))
        at += steps[-1]
    assert steps == pytest.approx(sorted(steps)) and steps[-1] == pytest.approx(MAX_INTERVAL)
    # Fine steps just past everything seen, yet a task stuck until the deadline costs
    # far fewer requests than the SDK's one per 2 s.
    assert steps[0] < 0.2
    assert len(steps) < sdk_requests(300) / 2


def test_the_first_poll_and_every_step_have_a_floor() -> None:
    stats = DurationStats({"imagen-4": 0.001})
    plan = PollPlan(stats, "imagen-4")
    assert plan.next_poll() == MIN_FIRST_DELAY
    plan.running_at(0.06)
    assert plan.next_poll() == pytest.approx(0.06 + MIN_STEP)


def test_a_service_hint_places_the_next_poll() -> None:
    stats = DurationStats()
    cold = PollPlan(stats, "imagen-4")
    cold.running_at(1.0)
    assert cold.next_poll(expected_finish=7.5) == 2.0, "cold: never past the SDK's next poll"
    for _ in range(COLD_OBSERVATIONS):
        stats.observe("imagen-4", 9.0, 10.0)
    plan = PollPlan(stats, "imagen-4")
    plan.running_at(1.0)
    assert plan.next_poll(expected_finish=7.5) == 7.5
    assert plan.next_poll(expected_finish=0.5) == 1.0 + MIN_STEP, "never sooner than the floor"


@pytest.mark.parametrize(
    ("answer", "elapsed", "expected"),
    [
        ({"eta_seconds": 2.5}, 4.0, 6.5),
        ({"eta": "1.5"}, 4.0, 5.5),
        ({"estimated_seconds_remaining": 0}, 4.0, 4.0),
        ({"progress": 40}, 4.0, 10.0),  # a percentage
        ({"progress": 0.8}, 4.0, 5.0),  # a share
        ({"percent": 50, "eta_seconds": 1}, 4.0, 5.0),  # seconds left win over progress
        ({"progress": 0}, 4.0, None),
        ({"progress": 100}, 4.0, None),
        ({"eta_seconds": -3}, 4.0, None),
        ({"eta_seconds": "soon"}, 4.0, None),
        ({"eta_seconds": True}, 4.0, None),
        ({"eta_seconds": float("nan")}, 4.0, None),
        ({"status": "processing"}, 4.0, None),
    ],
)
def test_hints_are_read_tolerantly(answer, elapsed, expected) -> None:
    assert expected_finish(answer, elapsed) == expected


# --- what is learned ---------------------------------------------------------------------


def test_a_prior_far_too_long_is_unlearned_within_a_few_tasks() -> None:
    # Tasks take 1 s; the catalog says 6 s. Cold, the first is noticed as the SDK would
    # (at 2 s); then the prior goes, and the polls come to the finishes.
    stats = DurationStats()
    outcomes = run_waves(stats, "imagen-4-fast", [[1.0]] * 16)
    assert outcomes[0].late <= outcomes[0].sdk_late
    assert statistics.mean(outcome.late for outcome in outcomes[-4:]) < outcomes[0].late / 4
    prior_low = MODELS["imagen-4-fast"].typical_seconds * PRIOR_SPAN[0]
    assert stats.window("imagen-4-fast")[1] < prior_low, "all of it below where the prior began"


def test_a_wait_on_a_bare_id_learns_only_what_it_saw() -> None:
    stats = DurationStats()
    found_done = PollPlan(stats, "imagen-4", submitted_here=False)
    found_done.done_at(found_done.next_poll())  # it may have ended long before the wait
    assert stats.observations("imagen-4") == 0
    seen_running = PollPlan(stats, "imagen-4", submitted_here=False)
    seen_running.running_at(2.0)
    seen_running.done_at(2.5)
    assert stats.observations("imagen-4") == 1


def test_the_issue_targets_hold_on_its_durations() -> None:
    """Ours against the SDK's schedule, all three models, 30 runs of 5 waves of 6 tasks."""
    rng = random.Random(11)
    outcomes = []
    for _ in range(30):
        for model in RANGES:
            outcomes += run_waves(DurationStats(), model, waves(model, 5, 6, rng))
    first = [o for o in outcomes if o.wave == 0]
    learned = [o for o in outcomes if o.wave > 0]
    late = [o.late for o in learned]
    sdk_late = [o.sdk_late for o in learned]
    assert statistics.median(late) <= 0.35 * statistics.median(sdk_late)
    assert p95(late) <= 0.6 * p95(sdk_late)
    assert statistics.mean(o.polls for o in learned) <= statistics.mean(
        o.sdk_polls for o in learned
    )
    first_sdk = statistics.median(o.sdk_late for o in first)
    assert statistics.median(o.late for o in first) <= 0.75 * first_sdk


# --- a cold start: priors that may be far off ---------------------------------------------

# Durations far from the catalog's priors (imagen-4 10 s, imagen-4-fast 6 s): a task that
# is done long before the prior's span begins, and one that runs long past its end.
FAR = {"imagen-4": (0.6, 1.0), "imagen-4-fast": (20.0, 24.0)}


def schedule(stats: DurationStats, model: str, duration: float) -> list[float]:
    """One task's polls, up to the one that saw it done."""
    plan, polls = PollPlan(stats, model), []
    while True:
        polls.append(plan.next_poll())
        if polls[-1] >= duration:
            return polls
        plan.running_at(polls[-1])


@pytest.mark.parametrize("model", list(MODELS))
def test_cold_no_task_is_noticed_later_than_by_the_sdk(model) -> None:
    for duration in [0.1 * i for i in range(1, 100)] + [10.5 + 1.7 * i for i in range(30)]:
        polls = schedule(DurationStats(), model, duration)
        sdk_seen = 2 * math.ceil(duration / 2)
        assert polls[-1] <= sdk_seen + MIN_STEP, f"a {duration:.1f} s task"
        assert polls[0] <= SDK_INTERVAL
        assert all(b - a <= SDK_INTERVAL + MIN_STEP for a, b in itertools.pairwise(polls))


def test_a_couple_of_finishes_far_from_the_prior_put_the_polls_ahead_of_the_sdk() -> None:
    rng = random.Random(5)
    for model, (low, high) in FAR.items():
        outcomes = []
        for _ in range(20):
            durations = [[rng.uniform(low, high) for _ in range(6)] for _ in range(4)]
            outcomes += run_waves(DurationStats(), model, durations)
        cold = [o for o in outcomes if o.wave == 0]
        learned = [o for o in outcomes if o.wave > 0]
        assert all(o.late <= o.sdk_late + MIN_STEP for o in cold), model
        late, sdk_late = [o.late for o in learned], [o.sdk_late for o in learned]
        assert statistics.median(late) <= 0.5 * statistics.median(sdk_late), model
        assert p95(late) <= p95(sdk_late), model
        assert statistics.mean(o.polls for o in learned) <= statistics.mean(
            o.sdk_polls for o in learned
        ), model
