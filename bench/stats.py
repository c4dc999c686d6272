"""Percentiles and summaries, the same way for every figure."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: a value that was measured, never an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class Summary:
    """A distribution of seconds (and, for polling, of requests per task)."""

    n: int
    p25: float
    p50: float
    p75: float
    p95: float
    requests: float | None = None  # mean status requests per task

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "n": self.n,
            "p25": round(self.p25, 3),
            "p50": round(self.p50, 3),
            "p75": round(self.p75, 3),
            "p95": round(self.p95, 3),
            "requests": None if self.requests is None else round(self.requests, 2),
        }


def summarize(seconds: Sequence[float], requests: Sequence[int] | None = None) -> Summary:
    return Summary(
        n=len(seconds),
        p25=percentile(seconds, 0.25),
        p50=percentile(seconds, 0.5),
        p75=percentile(seconds, 0.75),
        p95=percentile(seconds, 0.95),
        requests=statistics.mean(requests) if requests else None,
    )


def ratio(ours: float, reference: float) -> float:
    return ours / reference if reference else math.inf


def median_ratio(ours: Sequence[float], reference: Sequence[float]) -> float:
    """The median of `ours` over the median of `reference`, to two decimals."""
    return round(ratio(statistics.median(ours), statistics.median(reference)), 2)
