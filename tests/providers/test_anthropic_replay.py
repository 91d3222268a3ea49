"""Every recorded Anthropic exchange, replayed over loopback HTTP through the Messages adapter.

| fixture | covers | asserted |
|---|---|---|
| error-400-invalid-request | unsupported parameter value | invalid_request |
| error-400-prompt-too-long | "prompt is too long" | context_length |
| error-401-authentication | bad x-api-key | auth |
| error-404-model-not-found | unknown model | not_found |
| error-429-rate-limit | 429 without retry-after, anthropic-ratelimit-* | rate_limited, wait 0 s from resets |
| messages-cache-creation-legacy-usage | 2024 usage shape | input = 4 + 1163 written |
| messages-cache-creation | cache_creation breakdown; tool_use answer | structured via tool; writes |
| messages-cache-read | cache_read_input_tokens | input = 151 + 4602 cached |
| messages-stream-text | SSE message_start / message_delta usage | text and usage from the stream |
| messages-structured-output-beta | JSON answer as text; retry-after on a 200 | output parsed from text |
| messages-text | plain text, rate-limit headers | text, usage, limits |
| messages-thinking-tokens-detail | output_tokens_details.thinking_tokens | reasoning 23 of 39 |
| messages-thinking | thinking block before text | text only; reasoning not split out |
| messages-tool-result-followup | final text after tool results | text |
| messages-tool-use-parallel | two tool_use blocks | the one named like the schema |
"""

from __future__ import annotations

from functools import partial

import pytest
from support.provider_replay import Case, Prefix, ReplayServer, check_replay, fixture_names, obj

from schemas.errors import AuthError, ContextLength, InvalidRequest, NotFound, RateLimited

A = partial(Case, kind="anthropic")
CASES: dict[str, Case] = {
    "anthropic/error-400-invalid-request.json": A(
        error=InvalidRequest, message_has="does not support effort level"
    ),
    "anthropic/error-400-prompt-too-long.json": A(
        error=ContextLength, message_has="prompt is too long"
    ),
    "anthropic/error-401-authentication.json": A(error=AuthError),
    "anthropic/error-404-model-not-found.json": A(error=NotFound),
    "anthropic/error-429-rate-limit.json": A(
        error=RateLimited,
        retry_after=0.0,
        rate_limit={
            "limit_requests": 1000,
            "remaining_requests": 998,
            "limit_tokens": 450000,
            "remaining_tokens": 450000,
            "reset_requests_s": 0.0,
        },
    ),
    "anthropic/messages-cache-creation-legacy-usage.json": A(
        output=Prefix("Here are concise summaries of the three articles"),
        usage=(1167, 0, 1163, 187, 0),
        finish="end_turn",
        rate_limit={"limit_tokens": 480000, "remaining_requests": 3999, "reset_tokens_s": 0.0},
    ),
    "anthropic/messages-cache-creation.json": A(
        schema=obj(),
        schema_name="star_wars_tool",
        output={},
        usage=(4749, 0, 4602, 38, 0),
        finish="tool_use",
    ),
    "anthropic/messages-cache-read.json": A(
        schema=obj(),
        schema_name="star_wars_tool",
        output={},
        usage=(4753, 4602, 0, 38, 0),
        finish="tool_use",
    ),
    "anthropic/messages-stream-text.json": A(
        output="- Captain\n- Scoop", usage=(17, 0, 0, 10, 0), finish="end_turn"
    ),
    "anthropic/messages-structured-output-beta.json": A(
        schema=obj(joke="string", rating="integer"),
        output={
            "joke": "Why did the developer break up with OpenTelemetry? "
            "Because they had too many traces of their ex in the logs!",
            "rating": 7,
        },
        usage=(222, 0, 0, 39, 0),
        finish="end_turn",
        rate_limit={"retry_after_s": 59.0, "limit_tokens": 2400000},
    ),
    "anthropic/messages-text.json": A(
        output="2 + 2 = 4",
        usage=(16, 0, 0, 13, 0),
        finish="end_turn",
        rate_limit={
            "limit_requests": 10000,
            "remaining_requests": 9997,
            "limit_tokens": 12000000,
            "reset_requests_s": 0.0,
        },
    ),
    "anthropic/messages-thinking-tokens-detail.json": A(
        output="5 + 3 = **8**", usage=(45, 0, 0, 39, 23), finish="end_turn"
    ),
    "anthropic/messages-thinking.json": A(
        output=Prefix("I don't have access to real-time weather information."),
        usage=(43, 0, 0, 199, 0),
        finish="end_turn",
        # recorder placeholders in the token headers are skipped, real ones kept
        rate_limit={
            "limit_requests": 50,
            "remaining_requests": 49,
            "limit_tokens": None,
            "retry_after_s": 18.0,
        },
    ),
    "anthropic/messages-tool-result-followup.json": A(
        output=Prefix("Here's the information you requested"),
        usage=(893, 0, 0, 90, 0),
        finish="end_turn",
    ),
    "anthropic/messages-tool-use-parallel.json": A(
        schema=obj(latitude="string", longitude="string"),
        schema_name="weather",
        output={"latitude": "52.5200", "longitude": "13.4050"},
        usage=(701, 0, 0, 98, 0),
        finish="tool_use",
    ),
}


def test_every_anthropic_fixture_has_a_case() -> None:
    assert fixture_names("anthropic") == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_replay(replay_server: ReplayServer, name: str) -> None:
    await check_replay(replay_server, name, CASES[name])
    seen = replay_server.seen[0]
    assert seen.path_qs == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-test-SECRET-123"
    assert seen.headers["anthropic-version"] == "2023-06-01"
