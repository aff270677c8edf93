"""The TTFT histogram of the usage rollups: fixed log-scale buckets, so histograms of any rows
add up bucket by bucket and percentiles come from the sum. Pure.

Bucket 0 holds a TTFT under 1 ms. Bucket i (1 ≤ i ≤ 72) holds [γ^(i-1), γ^i) ms with
γ = 2^(1/4), so bucket 72 ends at 2^18 ms (262 s); bucket 73 holds everything from there on.
The layout is part of the schema (`usage_hourly.ttft_00` … `ttft_73`, migration 0007): changing
it needs a migration that rebuilds the rollups.

A percentile is SQL's `percentile_cont` (interpolated between the two nearest ranks) over each
bucket's representative value instead of the values themselves. A bucket [L, γL) is represented
by 2γL/(γ+1), which is within a relative `RELATIVE_ERROR` = (γ-1)/(γ+1) ≈ 8.6% of anything in
it; interpolating between two such values keeps that bound. So for TTFTs between 1 ms and 262 s
the reported percentile is within 8.6% of the exact one; under 1 ms it is within 0.5 ms; past
262 s it is reported as 262,144 ms, a floor.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

GAMMA = 2 ** (1 / 4)
BUCKETS = 74
# THRESHOLDS[k] is where bucket k+1 starts: 1 ms, then ×γ up to 2^18 ms. Every TTFT is put in
# its bucket here (the writer, the backfill and a report's partial hours alike).
THRESHOLDS: tuple[float, ...] = tuple(2 ** (k / 4) for k in range(BUCKETS - 1))
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)
UNDER_1_MS_ERROR = 0.5
REPRESENTATIVES: tuple[float, ...] = (
    0.5,
    *(2 * GAMMA * low / (GAMMA + 1) for low in THRESHOLDS[:-1]),
    THRESHOLDS[-1],
)


def bucket_of(ms: float) -> int | None:
    """The bucket of one TTFT; None for a value that is not a number (never counted)."""
    if math.isnan(ms):
        return None
    return bisect_right(THRESHOLDS, ms)


def percentile(counts: Sequence[int], fraction: float) -> float | None:
    """`percentile_cont(fraction)` over a histogram's representatives; None when it is empty."""
    cumulative = list(accumulate(counts))
    total = cumulative[-1] if cumulative else 0
    if total <= 0:
        return None
    position = fraction * (total - 1)
    lower = math.floor(position)
    low = _value_at(cumulative, lower)
    high = _value_at(cumulative, math.ceil(position))
    return low + (high - low) * (position - lower)


def _value_at(cumulative: list[int], rank: int) -> float:
    """The representative of the bucket holding the `rank`-th smallest value (from 0)."""
    return REPRESENTATIVES[min(bisect_right(cumulative, rank), BUCKETS - 1)]
