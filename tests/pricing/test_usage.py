"""extract_usage: the OpenAI usage shapes → Usage; a missing count is None, never 0."""

import pytest

from pricing.usage import Usage, extract_usage


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
            {"prompt_tokens": True, "completion_tokens": 5, "total_tokens": False},
            Usage(None, 5, None),
            id="bools-are-not-counts",
        ),
        pytest.param(
            {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": True},
                "completion_tokens_details": None,
            },
            Usage(10, 5, 15),
            id="bad-details-are-ignored",
        ),
    ],
)
def test_usage_is_extracted(raw, expected):
    assert extract_usage(raw) == expected


@pytest.mark.parametrize(
    "raw", [None, "usage", 42, [], ["prompt_tokens"], {}, {"total_tokens": 3}, {"foo": 1}]
)
def test_non_usage_input_gives_none(raw):
    assert extract_usage(raw) is None
