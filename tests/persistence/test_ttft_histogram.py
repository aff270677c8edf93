"""The TTFT histogram: buckets, and percentiles within the stated bound of the exact ones."""

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence.ttft_histogram import (
    BUCKETS,
    GAMMA,
    RELATIVE_ERROR,
    REPRESENTATIVES,
    THRESHOLDS,
    UNDER_1_MS_ERROR,
    bucket_of,
    percentile,
)
from tests.support.percentiles import percentile_cont

MAX_BOUNDED_MS = THRESHOLDS[-1]  # 2^18 ms: beyond it the histogram only gives a floor


def histogram(values: list[float]) -> list[int]:
    counts = [0] * BUCKETS
    for value in values:
        counts[bucket_of(value)] += 1
    return counts


def test_buckets_are_log_scale_from_1_ms_to_2_pow_18_ms() -> None:
    assert len(THRESHOLDS) == BUCKETS - 1 == len(REPRESENTATIVES) - 1
    assert THRESHOLDS[0] == 1.0 and THRESHOLDS[-1] == 2.0**18
    steps = [b / a for a, b in zip(THRESHOLDS, THRESHOLDS[1:], strict=False)]
    assert steps == pytest.approx([GAMMA] * len(steps))
    assert round(RELATIVE_ERROR, 4) == 0.0864


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [
        (0.0, 0),
        (-5.0, 0),
        (0.999, 0),
        (1.0, 1),  # a threshold starts its bucket
        (THRESHOLDS[1], 2),
        (math.nextafter(THRESHOLDS[1], 0), 1),
        (2.0, 5),
        (1000.0, 40),  # 2^(39/4) = 861 ≤ 1000 < 2^(40/4) = 1024
        (2.0**18, BUCKETS - 1),
        (1e12, BUCKETS - 1),
        (math.inf, BUCKETS - 1),
    ],
)
def test_bucket_of(ms: float, bucket: int) -> None:
    assert bucket_of(ms) == bucket


def test_a_value_that_is_not_a_number_is_not_counted() -> None:
    assert bucket_of(math.nan) is None


def test_every_representative_lies_in_its_bucket() -> None:
    for bucket, value in enumerate(REPRESENTATIVES):
        assert bucket_of(value) == bucket


def test_empty_histogram_has_no_percentile() -> None:
    assert percentile([0] * BUCKETS, 0.5) is None


def test_one_value_is_every_percentile_within_the_bound() -> None:
    counts = histogram([250.0])
    for fraction in (0.0, 0.5, 0.95, 1.0):
        assert percentile(counts, fraction) == pytest.approx(250.0, rel=RELATIVE_ERROR)


def test_values_past_the_last_threshold_read_as_its_floor() -> None:
    assert percentile(histogram([1e7, 2e7]), 0.5) == MAX_BOUNDED_MS


@given(
    st.lists(
        st.floats(min_value=1.0, max_value=MAX_BOUNDED_MS * 0.999, allow_nan=False),
        min_size=1,
        max_size=300,
    ),
    st.sampled_from([0.0, 0.05, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_percentile_is_within_the_relative_bound(values: list[float], fraction: float) -> None:
    exact = percentile_cont(values, fraction)
    assert exact is not None
    estimate = percentile(histogram(values), fraction)
    assert abs(estimate - exact) <= RELATIVE_ERROR * exact * (1 + 1e-12)


@given(
    st.lists(st.floats(min_value=0.0, max_value=0.999), min_size=1, max_size=50),
    st.sampled_from([0.5, 0.95]),
)
def test_under_1_ms_the_error_is_at_most_half_a_millisecond(
    values: list[float], fraction: float
) -> None:
    exact = percentile_cont(values, fraction)
    assert abs(percentile(histogram(values), fraction) - exact) <= UNDER_1_MS_ERROR


def test_known_latency_distribution_p50_and_p95() -> None:
    """10,000 log-normal TTFTs around 400 ms: measured error well inside the bound."""
    rng = random.Random(7)
    values = [rng.lognormvariate(math.log(400), 0.6) for _ in range(10_000)]
    counts = histogram(values)
    for fraction in (0.5, 0.95):
        exact = percentile_cont(values, fraction)
        error = abs(percentile(counts, fraction) - exact) / exact
        assert error <= RELATIVE_ERROR
