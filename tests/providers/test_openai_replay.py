"""Every recorded OpenAI and Azure exchange, replayed over loopback HTTP through the Chat
Completions adapter.

| fixture | covers | asserted |
|---|---|---|
| openai/chat-cache-write-tokens | prompt_tokens_details.cache_write_tokens | 4012 of 4020 input written |
| openai/chat-cached-tokens | cached_tokens inside prompt_tokens; x-ratelimit-* | cached 1024; limits, resets |
| openai/chat-json-object | json_object mode | output parsed from content |
| openai/chat-json-schema-refusal | message.refusal | refusal, billed, usage kept |
| openai/chat-json-schema-strict | json_schema strict | output object |
| openai/chat-reasoning-tokens-gpt5-nano | reasoning inside completion_tokens | reasoning 192 of 228 |
| openai/chat-reasoning-tokens-o3-mini | reasoning inside completion_tokens | reasoning 64 of 87 |
| openai/chat-stream-include-usage | SSE, usage in a last chunk with no choices | text and usage |
| openai/chat-text-basic | plain text; placeholder rate-limit headers | text; no bogus limits |
| openai/chat-tool-calls-parallel | two tool calls | the one named like the schema |
| openai/error-400-context-window-responses-api | context_length_exceeded | context_length |
| openai/error-400-unsupported-parameter | other 400, limits on an error | invalid_request + limits |
| openai/error-401-invalid-api-key | masked key echoed in message | auth; key echo redacted |
| openai/error-404-model-not-found | model_not_found | not_found |
| openai/error-429-insufficient-quota | 429 that is billing | quota_exhausted, no wait |
| openai/error-429-request-too-large-tpm | 429, no retry-after | rate_limited, wait 12 ms from reset |
| openai/error-503-upstream-plaintext | non-JSON 503 | overloaded, text kept |
| azure/error-429-retry-after | retry-after 1 + retry-after-ms 0 | rate_limited, wait 1 s |
"""

from __future__ import annotations

import pytest
from support.provider_replay import Case, Prefix, ReplayServer, check_replay, fixture_names, obj

from schemas.errors import (
    AuthError,
    ContextLength,
    InvalidRequest,
    NotFound,
    Overloaded,
    QuotaExhausted,
    RateLimited,
    Refusal,
)

CASES: dict[str, Case] = {
    "openai/chat-cache-write-tokens.json": Case(
        model="gpt-5.6-sol", output="OK", usage=(4020, 0, 4012, 4, 0), finish="stop"
    ),
    "openai/chat-cached-tokens.json": Case(
        output=Prefix("1. **Open-Source Library OpenLLMetry"),
        usage=(1149, 1024, 0, 353, 0),
        finish="stop",
        rate_limit={
            "limit_requests": 30000,
            "remaining_requests": 29999,
            "limit_tokens": 150000000,
            "remaining_tokens": 149998385,
            "reset_requests_s": 0.002,
            "reset_tokens_s": 0.0,
        },
    ),
    "openai/chat-json-object.json": Case(
        caps=("json_object",),
        schema={"type": "object", "properties": {"status": {"type": "string"}}},
        output={"status": "success"},
        usage=(22, 0, 0, 9, 0),
        finish="stop",
    ),
    "openai/chat-json-schema-refusal.json": Case(
        caps=("json_schema",),
        schema=obj(answer="string"),
        error=Refusal,
        usage=(65, 0, 0, 13, 0),
        message_has="I'm very sorry, but I can't assist with that request.",
        rate_limit={"remaining_tokens": 29999976},
    ),
    "openai/chat-json-schema-strict.json": Case(
        caps=("json_schema",),
        schema=obj(name="string", healthy="boolean", calories="integer", taste_profile="array"),
        output={
            "name": "Avocado",
            "healthy": True,
            "calories": 160,
            "taste_profile": ["creamy", "buttery", "nutty", "slightly sweet"],
        },
        usage=(129, 0, 0, 33, 0),
        finish="stop",
    ),
    "openai/chat-reasoning-tokens-gpt5-nano.json": Case(
        caps=("reasoning",),
        output="3\n\nThere are three 'r' letters in \"strawberry\" (positions 3, 8, and 9).",
        usage=(11, 0, 0, 228, 192),
        finish="stop",
        rate_limit={"limit_requests": 500, "reset_requests_s": 0.12, "reset_tokens_s": 0.002},
    ),
    "openai/chat-reasoning-tokens-o3-mini.json": Case(
        caps=("reasoning",),
        output="Hello there! How can I help you today?",
        usage=(7, 0, 0, 87, 64),
        finish="stop",
    ),
    "openai/chat-stream-include-usage.json": Case(
        output="Hello! How can I assist you today?",
        usage=(10, 0, 0, 9, 0),
        finish="stop",
        rate_limit={"remaining_tokens": 29980, "reset_tokens_s": 0.04},
    ),
    "openai/chat-text-basic.json": Case(
        output="Hello! How can I assist you today?", usage=(9, 0, 0, 9, 0), finish="stop"
    ),
    "openai/chat-tool-calls-parallel.json": Case(
        caps=("tools",),
        schema=obj(location="string"),
        schema_name="get_weather",
        output={"location": "San Francisco"},
        usage=(67, 0, 0, 47, 0),
        finish="tool_calls",
    ),
    "openai/error-400-context-window-responses-api.json": Case(
        error=ContextLength, message_has="context window"
    ),
    "openai/error-400-unsupported-parameter.json": Case(
        error=InvalidRequest,
        message_has="Unsupported parameter",
        rate_limit={"limit_requests": 5000, "remaining_tokens": 3999993},
    ),
    "openai/error-401-invalid-api-key.json": Case(
        error=AuthError, message_has="Incorrect API key provided: [REDACTED]"
    ),
    "openai/error-404-model-not-found.json": Case(error=NotFound, message_has="does not exist"),
    "openai/error-429-insufficient-quota.json": Case(
        error=QuotaExhausted, message_has="exceeded your current quota"
    ),
    "openai/error-429-request-too-large-tpm.json": Case(
        error=RateLimited,
        retry_after=0.012,
        message_has="Request too large",
        rate_limit={"limit_tokens": 2000000, "remaining_requests": 4999},
    ),
    "openai/error-503-upstream-plaintext.json": Case(
        error=Overloaded, message_has="upstream connect error"
    ),
    "azure/error-429-retry-after.json": Case(
        kind="azure-openai",
        model="grok-4-1-fast-non-reasoning",
        error=RateLimited,
        retry_after=1.0,
        message_has="exceeded rate limit",
        rate_limit={"retry_after_s": 1.0},
    ),
}


def test_every_openai_and_azure_fixture_has_a_case() -> None:
    assert fixture_names("openai", "azure") == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_replay(replay_server: ReplayServer, name: str) -> None:
    case = CASES[name]
    await check_replay(replay_server, name, case)
    seen = replay_server.seen[0]
    if case.kind == "azure-openai":
        assert seen.path_qs == (
            f"/openai/deployments/{case.model}/chat/completions?api-version=2024-10-21"
        )
        assert seen.headers["api-key"] == "sk-test-SECRET-123"
        assert "model" not in seen.body
    else:
        assert seen.path_qs == "/v1/chat/completions"
        assert seen.headers["Authorization"] == "Bearer sk-test-SECRET-123"
        assert seen.body["model"] == case.model
