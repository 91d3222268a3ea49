"""What each protocol puts on the wire, as seen by the loopback server."""

from __future__ import annotations

from typing import Any

import pytest
from support.provider_replay import Case, ReplayServer, call, obj

from providers.openai import allows_strict, allows_strict_cached

LABEL = obj(label="string")
LOOSE = {"type": "object", "properties": {"label": {"type": "string"}}}
OK_CHAT = {"choices": [{"message": {"content": '{"label": "x"}'}}], "usage": {}}


async def sent(server: ReplayServer, case: Case, reply: dict[str, Any] = OK_CHAT) -> dict[str, Any]:
    server.serve(200, reply)
    await call(server, case)
    body = server.seen[0].body
    assert isinstance(body, dict)
    return body


async def test_openai_json_schema_is_strict_when_the_schema_allows(
    replay_server: ReplayServer,
) -> None:
    body = await sent(replay_server, Case(caps=("json_schema",), schema=LABEL, schema_name="cls"))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "cls", "schema": LABEL, "strict": True},
    }
    assert body["max_completion_tokens"] == 1024 and body["temperature"] == 0.0


async def test_openai_json_schema_is_not_strict_for_open_schemas(
    replay_server: ReplayServer,
) -> None:
    body = await sent(replay_server, Case(caps=("json_schema",), schema=LOOSE))
    assert body["response_format"]["json_schema"]["strict"] is False


async def test_openai_without_json_schema_forces_one_function(
    replay_server: ReplayServer,
) -> None:
    body = await sent(replay_server, Case(caps=("tools",), schema=LABEL, schema_name="my label"))
    assert body["tool_choice"] == {"type": "function", "function": {"name": "my_label"}}
    [tool] = body["tools"]
    assert tool["function"]["name"] == "my_label" and tool["function"]["parameters"] == LABEL
    assert "response_format" not in body


@pytest.mark.parametrize(("caps", "mode"), [(("json_object",), "json_object"), ((), None)])
async def test_openai_without_schema_support_asks_in_words(
    replay_server: ReplayServer, caps: tuple[str, ...], mode: str | None
) -> None:
    body = await sent(replay_server, Case(caps=caps, schema=LABEL))
    assert body.get("response_format") == ({"type": mode} if mode else None)
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.")
    assert "JSON" in system["content"] and '"label"' in system["content"]
    assert body["messages"][1] == {"role": "user", "content": "Hello"}


async def test_reasoning_models_get_no_temperature(replay_server: ReplayServer) -> None:
    assert "temperature" not in await sent(replay_server, Case(caps=("reasoning",)))


async def test_anthropic_structured_output_is_one_forced_tool(
    replay_server: ReplayServer,
) -> None:
    reply = {
        "content": [{"type": "tool_use", "name": "cls", "input": {"label": "x"}}],
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    body = await sent(replay_server, Case(kind="anthropic", schema=LABEL, schema_name="cls"), reply)
    assert body["tools"][0]["name"] == "cls" and body["tools"][0]["input_schema"] == LABEL
    assert body["tool_choice"] == {"type": "tool", "name": "cls"}
    assert body["system"] == "Be brief." and body["max_tokens"] == 1024
    assert body["messages"] == [{"role": "user", "content": "Hello"}]


async def test_gemini_structured_output_uses_response_json_schema(
    replay_server: ReplayServer,
) -> None:
    reply = {"candidates": [{"content": {"parts": [{"text": '{"label": "x"}'}]}}]}
    body = await sent(replay_server, Case(kind="gemini", schema=LABEL), reply)
    assert body["generationConfig"] == {
        "maxOutputTokens": 1024,
        "temperature": 0.0,
        "responseMimeType": "application/json",
        "responseJsonSchema": LABEL,
    }
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]


def test_allows_strict_checks_every_nested_object() -> None:
    nested = obj(label="string")
    nested["properties"]["tags"] = {"type": "array", "items": LOOSE}
    nested["required"].append("tags")
    assert allows_strict(LABEL)
    assert not allows_strict(LOOSE)
    assert not allows_strict(nested)
    assert not allows_strict({**LABEL, "required": []})
    assert allows_strict({"anyOf": [LABEL, {"type": "null"}]})
    for schema in (LABEL, LOOSE, nested, {**LABEL, "required": []}):  # twice: cached alike
        assert allows_strict_cached(schema) == allows_strict_cached(schema) == allows_strict(schema)
