"""The shared adapter: outputs, billed failures, estimates, timeouts, transports, refusals."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest
from support.provider_replay import Case, ReplayServer, call, obj, provider_config

from providers.registry import build_adapter
from schemas.completion import Completion
from schemas.errors import (
    ConnectionFailed,
    InvalidOutput,
    Overloaded,
    ProviderError,
    RateLimited,
    Refusal,
    ServerError,
    Timeout,
)

OPENAI_USAGE = {"prompt_tokens": 10, "completion_tokens": 5}
STRUCTURED = Case(caps=("json_schema",), schema=obj(label="string"))


def chat(content: str | None, finish: str = "stop", **message: object) -> dict[str, object]:
    return {
        "id": "c1",
        "choices": [{"message": {"content": content, **message}, "finish_reason": finish}],
        "usage": OPENAI_USAGE,
    }


async def test_text_call_returns_the_text(replay_server: ReplayServer) -> None:
    replay_server.serve(200, chat("hello"))
    result, _, _ = await call(replay_server, Case())
    assert isinstance(result, Completion)
    assert (result.output, result.text, result.response_id) == ("hello", "hello", "c1")


async def test_structured_answer_in_code_fences_is_parsed(replay_server: ReplayServer) -> None:
    replay_server.serve(200, chat('```json\n{"label": "bug"}\n```'))
    result, _, _ = await call(replay_server, STRUCTURED)
    assert isinstance(result, Completion) and result.output == {"label": "bug"}


async def test_answer_that_is_not_json_is_invalid_output_billed_with_usage(
    replay_server: ReplayServer,
) -> None:
    replay_server.serve(200, chat("I think it is a bug", finish="length"))
    result, _, _ = await call(replay_server, STRUCTURED)
    assert isinstance(result, InvalidOutput)
    assert result.billed and result.status == 200
    assert result.usage.input_tokens == 10 and result.usage.output_tokens == 5  # type: ignore[attr-defined]
    assert "cut off" in result.message


async def test_missing_usage_is_estimated_and_logged_never_zero(
    replay_server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    body = chat("a fairly short answer")
    del body["usage"]
    replay_server.serve(200, body)
    with caplog.at_level(logging.WARNING):
        result, _, _ = await call(replay_server, Case())
    assert isinstance(result, Completion)
    assert result.usage.estimated
    assert result.usage.input_tokens > 0 and result.usage.output_tokens == 4
    assert "reported no token usage" in caplog.text


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (chat(None, refusal="I can't help with that."), "I can't help with that."),
        (chat("", finish="content_filter"), "content filter"),
    ],
)
async def test_openai_refusals_are_refusal_errors_with_usage(
    replay_server: ReplayServer, body: dict[str, object], why: str
) -> None:
    replay_server.serve(200, body)
    result, _, _ = await call(replay_server, STRUCTURED)
    assert isinstance(result, Refusal) and result.billed
    assert why in result.message
    assert result.usage.output_tokens == 5  # type: ignore[attr-defined]


async def test_anthropic_stop_reason_refusal(replay_server: ReplayServer) -> None:
    replay_server.serve(
        200,
        {"content": [], "stop_reason": "refusal", "usage": {"input_tokens": 9, "output_tokens": 0}},
    )
    result, _, _ = await call(replay_server, Case(kind="anthropic"))
    assert isinstance(result, Refusal)
    assert result.usage.input_tokens == 9  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        {
            "candidates": [{"finishReason": "SAFETY", "content": {"parts": []}}],
            "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 0},
        },
        {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 7},
        },
    ],
)
async def test_gemini_safety_blocks_are_refusals(
    replay_server: ReplayServer, body: dict[str, object]
) -> None:
    replay_server.serve(200, body)
    result, _, _ = await call(replay_server, Case(kind="gemini"))
    assert isinstance(result, Refusal)
    assert result.usage.input_tokens == 7  # type: ignore[attr-defined]


async def test_gemini_thought_parts_are_not_the_answer(replay_server: ReplayServer) -> None:
    parts = [{"text": "let me think", "thought": True}, {"text": "42"}]
    replay_server.serve(
        200,
        {"candidates": [{"content": {"parts": parts}}], "usageMetadata": {"promptTokenCount": 1}},
    )
    result, _, _ = await call(replay_server, Case(kind="gemini"))
    assert isinstance(result, Completion) and result.output == "42"


async def test_anthropic_529_is_overloaded_with_retry_after(replay_server: ReplayServer) -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    replay_server.serve(529, body, {"retry-after": "7"})
    result, _, _ = await call(replay_server, Case(kind="anthropic"))
    assert isinstance(result, Overloaded) and result.retry_after_s == 7.0


async def test_error_inside_a_200_body_is_classified(replay_server: ReplayServer) -> None:
    replay_server.serve(200, {"error": {"code": 429, "message": "Rate limit exceeded"}})
    result, _, _ = await call(replay_server, Case(profile="openrouter"))
    assert isinstance(result, RateLimited)


async def test_a_200_that_is_not_json_is_a_server_error(replay_server: ReplayServer) -> None:
    replay_server.serve(200, "<html>gateway</html>")
    result, _, _ = await call(replay_server, Case())
    assert isinstance(result, ServerError)
    assert result.usage is None and result.rate_limit is None  # type: ignore[attr-defined]


async def test_slow_provider_times_out(replay_server: ReplayServer) -> None:
    replay_server.serve(200, chat("late"), delay_s=1.0)
    case = Case()
    adapter = build_adapter(
        provider_config(case, replay_server.url).model_copy(update={"timeout_s": 0.2})
    )
    result, _, _ = await call(replay_server, case, adapter)
    assert isinstance(result, Timeout)
    assert "timed out" in result.message


async def test_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens
    server = ReplayServer()
    server.url = f"http://127.0.0.1:{port}"
    result, _, _ = await call(server, Case())
    assert isinstance(result, ConnectionFailed)
    assert result.retryable


async def test_any_httpx_transport_can_be_injected() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=chat("mocked"))

    case = Case()
    adapter = build_adapter(
        provider_config(case, "http://mock.invalid"), transport=httpx.MockTransport(answer)
    )
    result, _, _ = await call(ReplayServer(), case, adapter)
    assert isinstance(result, Completion) and result.output == "mocked"
    assert seen[0].url.path == "/v1/chat/completions"


async def test_every_error_carries_usage_and_rate_limit_attributes(
    replay_server: ReplayServer,
) -> None:
    replay_server.serve(
        500, {"error": {"message": "boom"}}, {"x-ratelimit-remaining-requests": "3"}
    )
    result, _, _ = await call(replay_server, Case())
    assert isinstance(result, ProviderError)
    assert result.usage is None  # type: ignore[attr-defined]
    assert result.rate_limit.remaining_requests == 3  # type: ignore[attr-defined]
