"""API keys never appear in error messages, reprs, logs or URLs."""

from __future__ import annotations

import logging

import pytest
from support.provider_replay import SECRET, Case, ReplayServer, call, provider_config

from providers.redaction import MASK, redact
from providers.registry import build_adapter
from schemas.errors import AuthError, InvalidRequest, ProviderError


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"bad key {SECRET} sent", "bad key"),
        ("Incorrect API key provided: sk-test-*******-123. See docs.", "See docs."),
        ("Authentication Fails, Your api key: ****-key is invalid", "is invalid"),
        ("header was Authorization: Bearer abc.def-123", "header was"),
        ("GET /v1beta/models/x:generateContent?key=AIzaSyA-secret&alt=sse", "&alt=sse"),
        ("leaked sk-proj-abcdefghijklmnop1234 in logs", "in logs"),
    ],
)
def test_redact_masks_keys_and_keeps_the_rest(text: str, kept: str) -> None:
    cleaned = redact(text, [SECRET])
    assert MASK in cleaned and kept in cleaned
    for fragment in (SECRET, "*******-123", "****-key", "abc.def-123", "AIzaSyA", "sk-proj-"):
        assert fragment not in cleaned


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "API key not valid. Please pass a valid API key."
    assert redact(text, ["", "ab"]) == text


@pytest.mark.parametrize("kind", ["openai", "azure-openai", "anthropic", "gemini"])
async def test_echoed_key_never_reaches_message_repr_or_logs(
    replay_server: ReplayServer, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"error": {"message": f"key {SECRET} rejected; Bearer {SECRET}", "type": "x"}}
    replay_server.serve(401, body, {"x-echo": SECRET})
    with caplog.at_level(logging.DEBUG):
        result, adapter, _ = await call(replay_server, Case(kind=kind))
    assert isinstance(result, AuthError)
    for text in (str(result), repr(result), result.message, repr(result.args), repr(adapter)):
        assert SECRET not in text
    assert SECRET not in caplog.text
    assert SECRET not in repr(result.as_dict())


async def test_key_in_an_invalid_output_is_masked(replay_server: ReplayServer) -> None:
    replay_server.serve(
        200, {"choices": [{"message": {"content": f"not json {SECRET}"}}], "usage": {}}
    )
    result, _, _ = await call(replay_server, Case(caps=("json_schema",), schema={"type": "object"}))
    assert isinstance(result, ProviderError) and SECRET not in str(result)


async def test_transport_errors_do_not_carry_the_key() -> None:
    case = Case(kind="gemini")
    adapter = build_adapter(provider_config(case, "http://127.0.0.1:9"))
    result, _, _ = await call(ReplayServer(), case, adapter)
    assert isinstance(result, ProviderError)
    assert SECRET not in str(result) and "key=" not in str(result)


async def test_gemini_key_travels_in_a_header_never_in_the_url(
    replay_server: ReplayServer,
) -> None:
    replay_server.serve(200, {"candidates": [{"content": {"parts": [{"text": "ok"}]}}]})
    await call(replay_server, Case(kind="gemini", model="models/gemini-2.5-flash"))
    seen = replay_server.seen[0]
    assert seen.headers["x-goog-api-key"] == SECRET
    assert seen.path_qs == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert SECRET not in seen.path_qs


async def test_no_key_configured_sends_no_auth_header(replay_server: ReplayServer) -> None:
    replay_server.serve(400, {"error": {"message": "bad"}})
    case = Case(profile="vllm")
    adapter = build_adapter(
        provider_config(case, replay_server.url).model_copy(update={"api_key": None})
    )
    result, _, _ = await call(replay_server, case, adapter)
    assert isinstance(result, InvalidRequest)
    assert "Authorization" not in replay_server.seen[0].headers
