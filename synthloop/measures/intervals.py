"""Confidence intervals of binomial rates (one implementation, used by the privacy attacks and
the AI-text share estimate)."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the two-sided 95% normal quantile


@dataclass(frozen=True)
class Rate:
    """``successes`` of ``n`` attempts, the rate and its Wilson score interval."""

    successes: int
    n: int
    rate: float
    low: float
    high: float


def wilson(successes: int, n: int, z: float = Z95) -> Rate:
    """The Wilson score interval of a binomial rate at normal quantile ``z`` (1.96: 95%),
    clipped to [0, 1]; an empty sample (``n`` = 0) has rate NaN and interval [0, 1]."""
    if n <= 0:
        return Rate(0, 0, float("nan"), 0.0, 1.0)
    p = successes / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return Rate(int(successes), int(n), p, max(0.0, mid - half), min(1.0, mid + half))
