"""Every recorded exchange with an OpenAI-compatible endpoint (DeepSeek, Mistral, Groq,
OpenRouter, Together), replayed over loopback HTTP through the Chat Completions adapter
with the endpoint's profile.

| fixture | covers | asserted |
|---|---|---|
| deepseek/chat-cache-hit | prompt_cache_hit_tokens | cached 256 of 359 |
| deepseek/chat-json-mode | json_object mode | output object |
| deepseek/chat-stream | SSE, usage on the finish chunk | text and usage |
| deepseek/chat-text | plain text | text, usage |
| deepseek/chat-tool-calls | two tool calls | the one named like the schema |
| deepseek/error-400-context-length | "maximum context length" | context_length |
| deepseek/error-401-authentication | key echoed in message | auth; echo redacted |
| deepseek/reasoner-reasoning-content | reasoning_content beside content | content only; reasoning 26 |
| mistral/chat-text-cached-tokens | cached_tokens; *-minute rate-limit headers | cached 16; limits |
| mistral/chat-thinking-magistral | content as a list of thinking/text chunks | text chunk only |
| mistral/chat-tool-call | forced function | output object, cached 112 |
| mistral/error-401-unauthorized | {"detail": ...} error shape | auth |
| groq/chat-reasoning-gpt-oss | message.reasoning | content only; reasoning 48 |
| groq/chat-stream-x-groq-usage | SSE, usage under x_groq.usage | text and usage; limits |
| groq/chat-text | plain text; "10.332999999s" resets | text, usage, resets |
| groq/error-400-tool-use-failed | model's tool call broke the schema | invalid_output |
| groq/error-404-model-not-found | unknown model | not_found |
| openrouter/chat-cache-anthropic | cached + cache_write, usage.cost, cut off | usage, provider cost |
| openrouter/chat-reasoning | whitespace keep-alive before JSON | text, reasoning 586, cost |
| openrouter/chat-usage-cost | usage.cost | provider cost |
| openrouter/error-400-context-length | OpenRouter wording | context_length |
| openrouter/error-401-auth | numeric error.code | auth |
| openrouter/error-429-upstream-rate-limited | upstream error in metadata.raw | rate_limited, raw text kept |
| together/chat-text-retry-after | retry-after on a 200, bare x-ratelimit-* | limits, retry_after_s 2 |
| together/chat-tool-call | tool call, top-level usage.cached_tokens | output object |
"""

from __future__ import annotations

from functools import partial

import pytest
from support.provider_replay import Case, Prefix, ReplayServer, check_replay, fixture_names, obj

from schemas.errors import AuthError, ContextLength, InvalidOutput, NotFound, RateLimited

DS = partial(Case, profile="deepseek", model="deepseek-chat")
MI = partial(Case, profile="mistral", model="mistral-small-latest")
GQ = partial(Case, profile="groq", model="llama3-8b-8192")
OR = partial(Case, profile="openrouter", model="anthropic/claude-haiku-4.5")
TG = partial(Case, profile="together", model="meta-llama/Llama-3.3-70B-Instruct-Turbo")
WEATHER = obj(latitude="string", longitude="string")

CASES: dict[str, Case] = {
    "deepseek/chat-cache-hit.json": DS(
        output='The query "test data" has been processed successfully. '
        'The result returned is: **"Processed: test data"**.',
        usage=(359, 256, 0, 25, 0),
        finish="stop",
    ),
    "deepseek/chat-json-mode.json": DS(
        caps=("json_object",),
        schema=obj(result="integer"),
        output={"result": 8},
        usage=(44, 0, 0, 9, 0),
        finish="stop",
    ),
    "deepseek/chat-stream.json": DS(output="1, 2, 3.", usage=(11, 0, 0, 8, 0), finish="stop"),
    "deepseek/chat-text.json": DS(output="4", usage=(12, 0, 0, 1, 0), finish="stop"),
    "deepseek/chat-tool-calls.json": DS(
        caps=("tools",),
        schema=WEATHER,
        schema_name="weather",
        output={"latitude": "52.5200", "longitude": "13.4050"},
        usage=(407, 0, 0, 94, 0),
        finish="tool_calls",
    ),
    "deepseek/error-400-context-length.json": DS(
        error=ContextLength, message_has="maximum context length"
    ),
    "deepseek/error-401-authentication.json": DS(
        error=AuthError, message_has="Your api key: [REDACTED] is invalid"
    ),
    "deepseek/reasoner-reasoning-content.json": DS(
        output="5 + 3 equals 8.", usage=(12, 0, 0, 35, 26), finish="stop"
    ),
    "mistral/chat-text-cached-tokens.json": MI(
        output=Prefix("The file `ruby.xml` contains the following XML content"),
        usage=(93, 16, 0, 29, 0),
        finish="stop",
        rate_limit={
            "limit_tokens": 100000,
            "remaining_tokens": 99281,
            "limit_requests": 100,
            "remaining_requests": 92,
        },
    ),
    "mistral/chat-thinking-magistral.json": MI(
        output=Prefix("Crossing a river is quite different from crossing a street"),
        usage=(664, 0, 0, 747, 0),
        finish="stop",
    ),
    "mistral/chat-tool-call.json": MI(
        caps=("tools",),
        schema=WEATHER,
        schema_name="weather",
        output={"latitude": "41.9028", "longitude": "12.4964"},
        usage=(144, 112, 0, 28, 0),
        finish="tool_calls",
        rate_limit={"remaining_requests": 94},
    ),
    "mistral/error-401-unauthorized.json": MI(error=AuthError, message_has="Invalid API Key"),
    "groq/chat-reasoning-gpt-oss.json": GQ(output="4", usage=(84, 0, 0, 58, 48), finish="stop"),
    "groq/chat-stream-x-groq-usage.json": GQ(
        output=Prefix("A"),
        usage=(18, 0, 0, 73, 0),
        finish="stop",
        rate_limit={
            "limit_requests": 14400,
            "remaining_tokens": 5987,
            "reset_requests_s": 6.0,
            "reset_tokens_s": 0.13,
        },
    ),
    "groq/chat-text.json": GQ(
        output=Prefix("Here's a joke about OpenTelemetry"),
        usage=(18, 0, 0, 43, 0),
        finish="stop",
        rate_limit={"reset_requests_s": 10.332999999, "reset_tokens_s": 0.026},
    ),
    "groq/error-400-tool-use-failed.json": GQ(
        error=InvalidOutput, message_has="Tool call validation failed"
    ),
    "groq/error-404-model-not-found.json": GQ(error=NotFound),
    "openrouter/chat-cache-anthropic.json": OR(
        output=Prefix("**Step-by-step breakdown:**"),
        usage=(2649, 2569, 79, 100, 0),
        finish="length",
        provider_cost=0.00256995,
    ),
    "openrouter/chat-reasoning.json": OR(
        output=Prefix("I'd ask: **\"What truthful answer"),
        usage=(80, 0, 0, 855, 586),
        finish="stop",
        provider_cost=0.004355,
    ),
    "openrouter/chat-usage-cost.json": OR(
        output="2 + 2 = 4", usage=(16, 0, 0, 13, 0), finish="stop", provider_cost=8.1e-05
    ),
    "openrouter/error-400-context-length.json": OR(
        error=ContextLength, message_has="maximum context length is 200000"
    ),
    "openrouter/error-401-auth.json": OR(
        error=AuthError, message_has="Missing Authentication header"
    ),
    "openrouter/error-429-upstream-rate-limited.json": OR(
        error=RateLimited,
        message_has="Provider returned error: google/gemini-2.0-flash-exp:free is temporarily",
    ),
    "together/chat-text-retry-after.json": TG(
        output="To find the answer, add 4200 and 42.\n\n4200 + 42 = 4242",
        usage=(44, 0, 0, 23, 0),
        finish="stop",
        rate_limit={
            "retry_after_s": 2.0,
            "limit_requests": 10,
            "remaining_requests": 19,
            "limit_tokens": 3000,
            "remaining_tokens": 3000,
            "reset_requests_s": 2.0,
        },
    ),
    "together/chat-tool-call.json": TG(
        caps=("tools",),
        schema=obj(city="string"),
        schema_name="get_current_weather",
        output={"city": "Paris"},
        usage=(198, 0, 0, 24, 0),
        finish="tool_calls",
    ),
}


def test_every_compatible_endpoint_fixture_has_a_case() -> None:
    dirs = ("deepseek", "mistral", "groq", "openrouter", "together")
    assert fixture_names(*dirs) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_replay(replay_server: ReplayServer, name: str) -> None:
    case = CASES[name]
    await check_replay(replay_server, name, case)
    seen = replay_server.seen[0]
    assert seen.path_qs == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer sk-test-SECRET-123"
    assert seen.body["max_tokens"] == 1024  # compatible endpoints keep the classic field
