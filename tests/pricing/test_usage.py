"""extract_usage: the OpenAI usage shapes → Usage; a missing count is None, never 0."""

import pytest

from pricing.usage import MAX_TOKENS, InvalidUsage, Usage, extract_usage


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {
                "prompt_tokens": 120,
                "completion_tokens": 80,
                "total_tokens": 200,
                "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 30, "audio_tokens": 0},
            },
            Usage(120, 80, 200, cached_tokens=64, reasoning_tokens=30),
            id="chat-completion-with-details",
        ),
        pytest.param(
            {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            Usage(5, 7, 12),
            id="legacy-completions",
        ),
        pytest.param(
            {"prompt_tokens": 5, "completion_tokens": 7},
            Usage(5, 7, 12),
            id="total-derived-when-missing",
        ),
        pytest.param(
            {
                "input_tokens": 100,
                "input_tokens_details": {"cached_tokens": 20},
                "output_tokens": 50,
                "output_tokens_details": {"reasoning_tokens": 10},
                "total_tokens": 150,
            },
            Usage(100, 50, 150, cached_tokens=20, reasoning_tokens=10),
            id="responses-api",
        ),
        pytest.param(
            {"prompt_tokens": 8, "total_tokens": 8},
            Usage(8, 0, 8),
            id="embeddings-have-no-output-tokens",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 3, "cache_creation_input_tokens": 4},
            Usage(10, 3, 13, cache_write_tokens=4),
            id="anthropic-style-cache-writes",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": None, "total_tokens": 10},
            Usage(10, None, 10),
            id="null-completion-is-missing-not-zero",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": None},
            Usage(10, 5, 15),
            id="null-details-are-missing",
        ),
        pytest.param(
            {"prompt_tokens": 12.0, "completion_tokens": 3},
            Usage(12, 3, 15),
            id="integral-floats-are-counts",
        ),
        pytest.param(
            {"prompt_tokens": MAX_TOKENS - 1, "completion_tokens": 1},
            Usage(MAX_TOKENS - 1, 1, MAX_TOKENS),
            id="the-largest-count",
        ),
    ],
)
def test_usage_is_extracted(raw, expected):
    assert extract_usage(raw) == expected


@pytest.mark.parametrize(
    "raw, problem",
    [
        ({"prompt_tokens": -1, "completion_tokens": 5}, "prompt_tokens is out of range (-1)"),
        ({"prompt_tokens": 1, "completion_tokens": 2**64}, "completion_tokens is out of range"),
        ({"prompt_tokens": 10**17, "completion_tokens": 1}, "prompt_tokens is out of range"),
        ({"prompt_tokens": MAX_TOKENS, "completion_tokens": 1}, "total_tokens is out of range"),
        ({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": -2}, "total_tokens"),
        ({"prompt_tokens": True, "completion_tokens": 5}, "prompt_tokens is not a whole number"),
        ({"prompt_tokens": 1.5, "completion_tokens": 5}, "not a whole number (1.5)"),
        ({"prompt_tokens": float("nan"), "completion_tokens": 5}, "not a whole number (nan)"),
        ({"prompt_tokens": float("inf"), "completion_tokens": 5}, "not a whole number (inf)"),
        ({"prompt_tokens": "10", "completion_tokens": 5}, "not a whole number ('10')"),
        ({"prompt_tokens": [1], "completion_tokens": 5}, "not a whole number"),
        ({"prompt_tokens": 1, "completion_tokens": 1,
          "prompt_tokens_details": {"cached_tokens": True}}, "cached_tokens"),
        ({"prompt_tokens": 1, "completion_tokens": 1,
          "completion_tokens_details": {"reasoning_tokens": -3}}, "reasoning_tokens"),
        ({"input_tokens": -1, "output_tokens": 1}, "input_tokens is out of range"),
        ({"input_tokens": 1, "output_tokens": 1,
          "output_tokens_details": {"reasoning_tokens": 2**70}}, "reasoning_tokens"),
        ({"prompt_tokens": 1, "completion_tokens": 1, "cache_creation_input_tokens": -4},
         "cache_creation_input_tokens"),
        ({"prompt_tokens": "9" * 5000, "completion_tokens": 1}, "..."),
    ],
)  # fmt: skip
def test_counts_that_cannot_be_token_counts_make_the_usage_invalid(raw, problem):
    with pytest.raises(InvalidUsage) as invalid:
        extract_usage(raw)
    assert problem in str(invalid.value) and len(str(invalid.value)) < 120


@pytest.mark.parametrize(
    "raw", [None, "usage", 42, [], ["prompt_tokens"], {}, {"total_tokens": 3}, {"foo": 1}]
)
def test_non_usage_input_gives_none(raw):
    assert extract_usage(raw) is None
