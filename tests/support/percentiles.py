"""The reference the TTFT histogram is measured against: SQL's `percentile_cont` over the
exact values (interpolated between the two nearest ranks)."""

from __future__ import annotations

import math


def percentile_cont(values: list[float], fraction: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)
