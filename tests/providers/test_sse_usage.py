"""The SSE helpers read the final text and usage out of recorded streams (fetched over loopback).

We never ask for streams, but a proxy may force one; the adapters then parse it with these
helpers (the replay tests cover that path through `complete`).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from support.provider_replay import ReplayServer, load_fixture

from providers import anthropic, gemini, openai
from providers.base import Reply, iter_sse_events
from providers.profiles import PROFILES
from schemas.completion import Usage

STREAMS: dict[str, tuple[Callable[[str], Reply], str, Usage, str]] = {
    "openai/chat-stream-include-usage.json": (
        openai.parse_sse_usage,
        "Hello! How can I assist you today?",
        Usage(input_tokens=10, output_tokens=9),
        "stop",
    ),
    "deepseek/chat-stream.json": (
        lambda text: openai.parse_sse_usage(text, PROFILES["deepseek"]),
        "1, 2, 3.",
        Usage(input_tokens=11, output_tokens=8),
        "stop",
    ),
    "groq/chat-stream-x-groq-usage.json": (
        lambda text: openai.parse_sse_usage(text, PROFILES["groq"]),
        "A",
        Usage(input_tokens=18, output_tokens=73),
        "stop",
    ),
    "anthropic/messages-stream-text.json": (
        anthropic.parse_sse_usage,
        "- Captain\n- Scoop",
        Usage(input_tokens=17, output_tokens=10),
        "end_turn",
    ),
    "gemini/stream-sse.json": (
        gemini.parse_sse_usage,
        "1, 2, 3",
        Usage(input_tokens=8, output_tokens=27, reasoning_tokens=20),
        "STOP",
    ),
}


async def _stream_text(server: ReplayServer, name: str) -> str:
    server.replay(load_fixture(name))
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/stream", json={"stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    return response.text


@pytest.mark.parametrize("name", sorted(STREAMS))
async def test_stream_helper_reads_final_text_and_usage(
    replay_server: ReplayServer, name: str
) -> None:
    parse, text_start, usage, finish = STREAMS[name]
    reply = parse(await _stream_text(replay_server, name))
    assert reply.text.startswith(text_start)
    assert reply.usage == usage
    assert reply.finish_reason == finish


async def test_groq_stream_text_is_every_delta_joined(replay_server: ReplayServer) -> None:
    text = await _stream_text(replay_server, "groq/chat-stream-x-groq-usage.json")
    deltas = [
        c["delta"].get("content") or ""
        for event in iter_sse_events(text)
        for c in event.get("choices", [])
    ]
    reply = openai.parse_sse_usage(text, PROFILES["groq"])
    assert reply.text == "".join(deltas)
    assert reply.text.endswith("a smile on your face!)")


def test_openai_stream_without_usage_reports_none() -> None:
    text = (
        'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    reply = openai.parse_sse_usage(text)
    assert (reply.text, reply.usage, reply.finish_reason) == ("hi", None, "stop")


def test_anthropic_stream_tool_input_is_assembled() -> None:
    events = [
        '{"type":"message_start","message":{"id":"m1","usage":{"input_tokens":5,'
        '"cache_read_input_tokens":2,"output_tokens":1}}}',
        '{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","name":"out"}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta",'
        '"partial_json":"{\\"a\\": "}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta",'
        '"partial_json":"1}"}}',
        '{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}',
    ]
    reply = anthropic.parse_sse_usage("".join(f"event: x\ndata: {e}\n\n" for e in events))
    assert reply.tool_calls[0].name == "out" and reply.tool_calls[0].arguments == '{"a": 1}'
    assert reply.usage == Usage(input_tokens=7, cached_input_tokens=2, output_tokens=7)
    assert reply.response_id == "m1"
