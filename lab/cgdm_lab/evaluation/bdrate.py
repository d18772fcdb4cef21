"""Bjontegaard delta rate (BD-rate) with piecewise-cubic (PCHIP) interpolation.

Each curve's log10(rate) is interpolated as a monotone piecewise-cubic function of the
metric and integrated over the metric range both curves cover; the mean log-rate
difference gives the average bitrate change of ``test`` against ``anchor`` at equal
quality. Negative means ``test`` needs fewer bits. PCHIP (rather than the original cubic
polynomial fit) cannot overshoot between points, the choice of the common-test-conditions
implementations of recent years.
"""

from __future__ import annotations

import math
from typing import Sequence


def _curve(rates: Sequence[float], quality: Sequence[float]) -> tuple[list[float], list[float]] | None:
    """(metric, log10 rate) sorted by metric, or None if unusable (< 2 points, a rate <= 0,
    a non-finite value, or a metric that does not rise strictly with the rate)."""
    pts = sorted(zip(rates, quality))
    if len(pts) < 2 or any(r <= 0 or not math.isfinite(r) or not math.isfinite(q) for r, q in pts):
        return None
    qs = [q for _, q in pts]
    if any(b <= a for a, b in zip(qs, qs[1:])):
        return None
    return qs, [math.log10(r) for r, _ in pts]


def bd_rate(anchor_rate: Sequence[float], anchor_quality: Sequence[float],
            test_rate: Sequence[float], test_quality: Sequence[float],
            higher_is_better: bool = True) -> float | None:
    """BD-rate of ``test`` vs ``anchor`` in percent; None when it is not defined (too few
    points, non-monotone curves, or no overlapping quality range)."""
    from scipy.interpolate import PchipInterpolator

    sign = 1.0 if higher_is_better else -1.0
    a = _curve(anchor_rate, [sign * q for q in anchor_quality])
    t = _curve(test_rate, [sign * q for q in test_quality])
    if a is None or t is None:
        return None
    lo, hi = max(a[0][0], t[0][0]), min(a[0][-1], t[0][-1])
    if hi <= lo:
        return None
    integral_a = PchipInterpolator(*a).integrate(lo, hi)
    integral_t = PchipInterpolator(*t).integrate(lo, hi)
    mean_diff = float(integral_t - integral_a) / (hi - lo)
    return (10.0 ** mean_diff - 1.0) * 100.0


def overlap(anchor_quality: Sequence[float], test_quality: Sequence[float]) -> float:
    """Fraction of the test curve's quality range that the anchor covers (0..1), to flag
    BD-rates computed over a small common range."""
    t_lo, t_hi = min(test_quality), max(test_quality)
    if t_hi <= t_lo:
        return 0.0
    lo, hi = max(min(anchor_quality), t_lo), min(max(anchor_quality), t_hi)
    return max(0.0, hi - lo) / (t_hi - t_lo)
