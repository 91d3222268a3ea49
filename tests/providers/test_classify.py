"""Error classification beyond the recorded fixtures: one class per status + body + headers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers.classify import classify, provider_error, read_error_body
from providers.ratelimits import parse_rate_limit
from schemas.errors import (
    AuthError,
    ContextLength,
    InvalidRequest,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Refusal,
    ServerError,
    Timeout,
)


def google(code: int, status: str, message: str, *details: dict[str, Any]) -> str:
    return json.dumps(
        {"error": {"code": code, "status": status, "message": message, "details": list(details)}}
    )


def openai(message: str, type_: str = "invalid_request_error", code: str | None = None) -> str:
    return json.dumps({"error": {"message": message, "type": type_, "code": code}})


FREE_TIER_GONE = google(
    429,
    "RESOURCE_EXHAUSTED",
    "Quota exceeded for metric: generate_content_free_tier_requests, limit: 0, model: x",
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaValue": "0"}]},
)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, FREE_TIER_GONE, QuotaExhausted),
        (403, google(403, "PERMISSION_DENIED", "Billing account not enabled"), AuthError),
        (400, google(400, "FAILED_PRECONDITION", "Please enable billing account"), QuotaExhausted),
        (
            400,
            openai("Your credit balance is too low to access the Anthropic API."),
            QuotaExhausted,
        ),
        (
            402,
            json.dumps({"error": {"code": 402, "message": "Insufficient credits"}}),
            QuotaExhausted,
        ),
        (
            400,
            google(
                400,
                "INVALID_ARGUMENT",
                "The input token count (2000000) exceeds the "
                "maximum number of tokens allowed (1048576).",
            ),
            ContextLength,
        ),
        (400, openai("too long", code="context_length_exceeded"), ContextLength),
        (413, "Request Entity Too Large", ContextLength),
        (
            400,
            openai(
                "The response was filtered due to the prompt triggering Azure OpenAI's "
                "content management policy.",
                code="content_filter",
            ),
            Refusal,
        ),
        (408, "", Timeout),
        (503, google(503, "UNAVAILABLE", "The model is overloaded."), Overloaded),
        (529, openai("Overloaded", "overloaded_error"), Overloaded),
        (500, openai("boom", "api_error"), ServerError),
        (502, "<html>Bad Gateway</html>", ServerError),
        (504, "", ServerError),
        (422, json.dumps({"detail": [{"msg": "field required"}]}), InvalidRequest),
        (409, "", InvalidRequest),
    ],
)
def test_classification(status: int, body: str, expected: type[ProviderError]) -> None:
    assert classify(status, read_error_body(body)) is expected


def error(status: int, body: str = "", headers: dict[str, str] | None = None) -> ProviderError:
    headers = headers or {}
    return provider_error(
        status,
        body,
        headers,
        provider="p",
        model="m",
        secrets=(),
        rate_limit=parse_rate_limit(headers),
    )


def test_retry_after_http_date_is_measured_from_the_provider_clock() -> None:
    exc = error(
        429,
        headers={
            "date": "Wed, 21 Oct 2026 07:28:00 GMT",
            "retry-after": "Wed, 21 Oct 2026 07:28:30 GMT",
        },
    )
    assert isinstance(exc, RateLimited) and exc.retry_after_s == 30.0


def test_retry_after_ms_alone_is_used() -> None:
    assert error(429, headers={"retry-after-ms": "1500"}).retry_after_s == 1.5


def test_reset_duration_with_minutes_when_tokens_ran_out() -> None:
    headers = {
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m30s",
        "x-ratelimit-remaining-requests": "10",
        "x-ratelimit-reset-requests": "2s",
    }
    assert error(429, headers=headers).retry_after_s == 90.0


def test_wait_hinted_in_the_message_when_no_header_says() -> None:
    body = openai("Rate limit reached. Please try again in 20ms.", "requests")
    assert error(429, body).retry_after_s == pytest.approx(0.02)


def test_anthropic_reset_timestamp_when_requests_ran_out() -> None:
    headers = {
        "date": "Mon, 08 Jun 2026 18:45:39 GMT",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-06-08T18:45:51Z",
    }
    assert error(429, headers=headers).retry_after_s == 12.0


def test_server_errors_get_no_invented_wait() -> None:
    assert error(500, openai("boom", "api_error")).retry_after_s is None


def test_messages_are_one_line_and_bounded() -> None:
    exc = error(400, "line one\nline two " + "x" * 2000)
    assert "\n" not in exc.message and len(exc.message) < 600
    assert exc.message.startswith("p m: HTTP 400: line one line two")
