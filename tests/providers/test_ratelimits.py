"""Rate-limit headers in every spelling seen in the recordings."""

from __future__ import annotations

import pytest

from providers.ratelimits import parse_duration, parse_rate_limit, parse_retry_after, reset_wait
from schemas.completion import RateLimitState


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6ms", 0.006),
        ("10.332999999s", 10.332999999),
        ("1m30s", 90.0),
        ("0s", 0.0),
        ("2", 2.0),
        ("27s", 27.0),
        ("1h2m3.5s", 3723.5),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_no_rate_limit_headers_means_no_state() -> None:
    assert parse_rate_limit({"content-type": "application/json"}) is None


def test_recorder_placeholders_are_ignored() -> None:
    assert (
        parse_rate_limit({"x-ratelimit-limit-requests": "X-RATELIMIT-LIMIT-REQUESTS-XXX"}) is None
    )


def test_anthropic_total_tokens_win_over_input_tokens() -> None:
    state = parse_rate_limit(
        {
            "anthropic-ratelimit-tokens-remaining": "5",
            "anthropic-ratelimit-input-tokens-remaining": "9",
        }
    )
    assert state is not None and state.remaining_tokens == 5


def test_retry_after_takes_the_longer_of_seconds_and_ms() -> None:
    assert parse_retry_after({"retry-after": "1", "retry-after-ms": "0"}) == 1.0
    assert parse_retry_after({"retry-after": "1", "retry-after-ms": "2500"}) == 2.5
    assert parse_retry_after({"retry-after": "garbage"}) is None


def test_reset_wait_prefers_the_exhausted_budget() -> None:
    state = RateLimitState(remaining_requests=0, reset_requests_s=3.0, reset_tokens_s=9.0)
    assert reset_wait(state) == 3.0
    assert reset_wait(RateLimitState(reset_requests_s=3.0, reset_tokens_s=9.0)) == 9.0
    assert reset_wait(RateLimitState()) is None
    assert reset_wait(None) is None
