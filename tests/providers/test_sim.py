"""The provider simulator, over real loopback HTTP, in each of its three wire formats."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from providers.sim import SimThread, start_sim
from schemas.config import SimConfig, SimModelConfig

LABELS = ["billing", "bug", "other"]
CLASSIFY = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": LABELS}},
    "required": ["label"],
    "additionalProperties": False,
}
INVOICE = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "total_amount": {"type": "number"},
        "paid": {"type": "boolean"},
        "items": {"type": "array", "items": {"type": "string"}},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    "required": ["vendor", "total_amount", "paid", "items", "address"],
    "additionalProperties": False,
}
INVOICE_TEXT = (
    "Vendor: ACME Corp\nTotal amount: $1,234.50\nPaid: yes\nItems: bolts, nuts\nCity: Paris"
)
FIXTURES = Path("/work/shared/fixtures/providers")


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(SimConfig()) as running:
        yield running


@pytest.fixture
def client(sim: SimThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=10) as http:
        yield http


def openai_body(text: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": f"Classify into one of: {', '.join(LABELS)}."},
            {"role": "user", "content": text},
        ],
    }
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": schema, "strict": True},
        }
    return body | extra


def anthropic_body(text: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 512,
        "system": "Answer with the tool.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        "tools": [{"name": "output", "input_schema": schema}],
        "tool_choice": {"type": "tool", "name": "output"},
    } | extra


def gemini_body(text: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if schema is not None:
        body["generationConfig"] = {
            "responseMimeType": "application/json",
            "responseJsonSchema": schema,
        }
    return body


GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"


def openai_output(response: httpx.Response) -> Any:
    return json.loads(response.json()["choices"][0]["message"]["content"])


def is_valid(value: Any, schema: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def keys(obj: dict[str, Any]) -> set[str]:
    """Field names, nested ones dotted: what the fixtures pin down."""
    out: set[str] = set()
    for key, value in obj.items():
        out.add(key)
        if isinstance(value, dict):
            out |= {f"{key}.{sub}" for sub in keys(value)}
    return out


# -- answers in each wire format --------------------------------------------------------


def test_openai_json_schema_answer_is_valid(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", json=openai_body(INVOICE_TEXT, INVOICE))
    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert openai_output(response) == {
        "vendor": "ACME Corp",
        "total_amount": 1234.5,
        "paid": True,
        "items": ["bolts", "nuts"],
        "address": {"city": "Paris"},
    }


def test_openai_forced_function_answers_with_a_tool_call(client: httpx.Client) -> None:
    body = openai_body(INVOICE_TEXT)
    body["tools"] = [{"type": "function", "function": {"name": "out", "parameters": INVOICE}}]
    body["tool_choice"] = {"type": "function", "function": {"name": "out"}}
    message = client.post("/chat/completions", json=body).json()["choices"][0]["message"]
    assert message["content"] is None
    call = message["tool_calls"][0]["function"]
    assert call["name"] == "out"
    assert is_valid(json.loads(call["arguments"]), INVOICE)


def test_azure_deployment_path_takes_the_model_from_the_path(client: httpx.Client) -> None:
    body = openai_body("a bug", CLASSIFY)
    del body["model"]
    response = client.post("/openai/deployments/my-gpt/chat/completions", json=body)
    assert response.json()["model"] == "my-gpt"
    assert openai_output(response) == {"label": "bug"}


def test_anthropic_forced_tool_answers_with_tool_use(client: httpx.Client) -> None:
    response = client.post("/v1/messages", json=anthropic_body(INVOICE_TEXT, INVOICE))
    assert response.status_code == 200
    body = response.json()
    assert body["stop_reason"] == "tool_use"
    (block,) = body["content"]
    assert block["type"] == "tool_use" and block["name"] == "output"
    assert is_valid(block["input"], INVOICE)
    assert block["input"]["vendor"] == "ACME Corp"


def test_gemini_response_schema_answers_with_json_text(client: httpx.Client) -> None:
    response = client.post(GEMINI_PATH, json=gemini_body(INVOICE_TEXT, INVOICE))
    assert response.status_code == 200
    candidate = response.json()["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    assert is_valid(json.loads(candidate["content"]["parts"][0]["text"]), INVOICE)


def test_gemini_openapi_schema_with_capital_types(client: httpx.Client) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"vendor": {"type": "STRING"}, "total_amount": {"type": "NUMBER"}},
        "required": ["vendor", "total_amount"],
    }
    body = gemini_body(INVOICE_TEXT)
    body["generationConfig"] = {"responseMimeType": "application/json", "responseSchema": schema}
    part = client.post(GEMINI_PATH, json=body).json()["candidates"][0]["content"]["parts"][0]
    assert json.loads(part["text"]) == {"vendor": "ACME Corp", "total_amount": 1234.5}


def test_json_object_mode_reads_the_schema_from_the_prompt(client: httpx.Client) -> None:
    body = openai_body("it crashed, a bug", response_format={"type": "json_object"})
    body["messages"][0]["content"] = "Answer as JSON.\nSchema: " + json.dumps(CLASSIFY)
    assert openai_output(client.post("/v1/chat/completions", json=body)) == {"label": "bug"}


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("My invoice was wrong, BILLING please help. Also a bug maybe.", "billing"),
        ("The app crashed: clear bug. Not about billing.", "bug"),
        ("Debugging is fun; no labels here", None),  # "bug" inside a word does not count
    ],
)
def test_enum_picks_the_label_named_first_in_the_user_text(
    client: httpx.Client, text: str, label: str | None
) -> None:
    first = openai_output(client.post("/v1/chat/completions", json=openai_body(text, CLASSIFY)))
    again = openai_output(client.post("/v1/chat/completions", json=openai_body(text, CLASSIFY)))
    assert first == again and first["label"] in LABELS
    if label is not None:
        assert first["label"] == label


def test_generated_text_grows_with_the_input(client: httpx.Client) -> None:
    def words(text: str) -> int:
        body = gemini_body(text)
        reply = client.post(GEMINI_PATH, json=body).json()
        return len(reply["candidates"][0]["content"]["parts"][0]["text"].split())

    short, long = words("Write about tides."), words("tides and moons and oceans " * 80)
    assert 25 <= short < long <= 95


def test_max_tokens_cuts_the_answer(client: httpx.Client) -> None:
    body = openai_body("tell me everything " * 50, max_completion_tokens=5)
    response = client.post("/v1/chat/completions", json=body).json()
    assert response["choices"][0]["finish_reason"] == "length"
    assert response["usage"]["completion_tokens"] <= 6


# -- invalid answers --------------------------------------------------------------------


def test_invalid_rate_is_deterministic_and_near_the_configured_share() -> None:
    config = SimConfig(models={"gpt-4o-mini": SimModelConfig(invalid_rate=0.3)})
    prompts = [f"ticket {i}: something about billing" for i in range(200)]

    def verdicts(sim: SimThread) -> list[bool]:
        out = []
        with httpx.Client(base_url=sim.base_url) as http:
            for text in prompts:
                content = http.post("/v1/chat/completions", json=openai_body(text, CLASSIFY))
                raw = content.json()["choices"][0]["message"]["content"]
                try:
                    out.append(is_valid(json.loads(raw), CLASSIFY))
                except json.JSONDecodeError:
                    out.append(False)
        assert sim.stats()["invalid_answers"] == out.count(False)
        return out

    with SimThread(config) as first:
        once = verdicts(first)
    with SimThread(config) as second:
        assert verdicts(second) == once  # a retry on the same model fails the same way
    assert 0.2 <= once.count(False) / len(once) <= 0.4


def test_invalid_tool_input_is_still_an_object() -> None:
    config = SimConfig(models={"claude-haiku-4-5": SimModelConfig(invalid_rate=1.0)})
    with SimThread(config) as sim, httpx.Client(base_url=sim.base_url) as http:
        for i in range(10):
            body = http.post("/v1/messages", json=anthropic_body(f"bug {i}", CLASSIFY)).json()
            value = body["content"][0]["input"]
            assert isinstance(value, dict) and not is_valid(value, CLASSIFY)


# -- rate limits ------------------------------------------------------------------------


def test_rpm_limit_answers_429_with_retry_after() -> None:
    with SimThread(SimConfig(rpm=6)) as sim, httpx.Client(base_url=sim.base_url) as http:
        assert http.post("/v1/chat/completions", json=openai_body("hi")).status_code == 200
        limited = http.post("/v1/chat/completions", json=openai_body("hi"))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "10"  # 6 rpm: one every 10 s
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert limited.headers["x-ratelimit-limit-requests"] == "6"
        assert limited.headers["x-ratelimit-remaining-requests"] == "0"

        assert http.post("/v1/messages", json=anthropic_body("hi", CLASSIFY)).status_code == 200
        limited = http.post("/v1/messages", json=anthropic_body("hi", CLASSIFY))
        assert limited.status_code == 429 and limited.headers["retry-after"] == "10"
        assert limited.json()["error"]["type"] == "rate_limit_error"
        assert limited.headers["anthropic-ratelimit-requests-remaining"] == "0"

        assert http.post(GEMINI_PATH, json=gemini_body("hi")).status_code == 200
        limited = http.post(GEMINI_PATH, json=gemini_body("hi"))
        error = limited.json()["error"]
        assert limited.status_code == 429 and "retry-after" not in limited.headers
        assert error["status"] == "RESOURCE_EXHAUSTED"
        retry = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
        assert retry[0]["retryDelay"] == "10s"
        assert sim.stats()["rate_limited"] == 3


def test_rpm_limit_holds_throughput_near_the_limit() -> None:
    """Never more than the burst plus the rate; near it while the client keeps asking (the
    lower bound is loose: on a loaded machine a slow client lets a full bucket overflow)."""
    rpm = 1200  # 20 per second, bursts of one second's worth
    with SimThread(SimConfig(rpm=rpm)) as sim, httpx.Client(base_url=sim.base_url) as http:
        started = time.monotonic()
        statuses: list[int] = []
        while time.monotonic() - started < 1.0 or statuses.count(429) < 5:
            statuses.append(http.post("/v1/chat/completions", json=openai_body("x")).status_code)
            assert time.monotonic() - started < 30, "the limit never answered 429"
        elapsed = time.monotonic() - started
    ceiling = rpm / 60 * (1 + elapsed)  # the burst, then the steady rate
    assert set(statuses) == {200, 429}
    assert statuses.count(200) <= ceiling + 2
    assert statuses.count(200) >= 0.5 * ceiling


def test_accounts_behind_path_prefixes_have_separate_limits(sim: SimThread) -> None:
    sim.patch(rpm=1)
    with httpx.Client(base_url=sim.base_url) as http:
        assert http.post("/v1/chat/completions", json=openai_body("x")).status_code == 200
        assert http.post("/v1/chat/completions", json=openai_body("x")).status_code == 429
        assert http.post("/groq/v1/chat/completions", json=openai_body("x")).status_code == 200


# -- injected failures ------------------------------------------------------------------


def test_fail_rate_answers_500_in_each_protocol_shape(sim: SimThread) -> None:
    sim.patch(fail_rate=1.0)
    with httpx.Client(base_url=sim.base_url) as http:
        openai = http.post("/v1/chat/completions", json=openai_body("x"))
        anthropic = http.post("/v1/messages", json=anthropic_body("x", CLASSIFY))
        gemini = http.post(GEMINI_PATH, json=gemini_body("x"))
    assert openai.status_code == 500 and openai.json()["error"]["type"] == "server_error"
    assert anthropic.status_code == 500
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "api_error"
    assert gemini.status_code == 500 and gemini.json()["error"]["status"] == "INTERNAL"
    assert sim.stats()["errors_injected"] == 3


def test_overloaded_is_529_for_anthropic_and_503_for_the_others(sim: SimThread) -> None:
    sim.patch(overloaded_rate=1.0)
    with httpx.Client(base_url=sim.base_url) as http:
        openai = http.post("/v1/chat/completions", json=openai_body("x"))
        anthropic = http.post("/v1/messages", json=anthropic_body("x", CLASSIFY))
        gemini = http.post(GEMINI_PATH, json=gemini_body("x"))
    assert openai.status_code == 503
    assert anthropic.status_code == 529
    assert anthropic.json()["error"]["type"] == "overloaded_error"
    assert gemini.status_code == 503 and gemini.json()["error"]["status"] == "UNAVAILABLE"
    assert sim.stats()["overloaded"] == 3


def test_fail_rate_is_roughly_the_configured_share() -> None:
    config = SimConfig(fail_rate=0.2, overloaded_rate=0.1)
    with SimThread(config) as sim, httpx.Client(base_url=sim.base_url) as http:
        body = anthropic_body("x", CLASSIFY)
        codes = [http.post("/v1/messages", json=body).status_code for _ in range(300)]
    assert 0.12 <= codes.count(500) / 300 <= 0.28
    assert 0.04 <= codes.count(529) / 300 <= 0.16


def test_admin_config_takes_a_provider_down_and_back(client: httpx.Client) -> None:
    assert client.post("/admin/config", json={"fail_rate": 1.0}).status_code == 200
    assert client.post("/v1/chat/completions", json=openai_body("x")).status_code == 500
    assert client.post("/admin/config", json={"fail_rate": 0.0}).status_code == 200
    assert client.post("/v1/chat/completions", json=openai_body("x")).status_code == 200
    assert client.post("/admin/config", json={"fail_rate": 2}).status_code == 400
    assert client.get("/stats").json()["requests"] == 2
    client.post("/admin/reset")
    assert client.get("/stats").json()["requests"] == 0


# -- usage ------------------------------------------------------------------------------


def test_usage_field_names_match_the_recordings() -> None:
    config = SimConfig(
        models={
            m: SimModelConfig(reasoning_tokens=64, cached_share=0.5)
            for m in ("gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash")
        }
    )
    with SimThread(config) as sim, httpx.Client(base_url=sim.base_url) as http:
        openai = http.post("/v1/chat/completions", json=openai_body("x " * 400)).json()["usage"]
        anthropic = http.post("/v1/messages", json=anthropic_body("x " * 400, CLASSIFY)).json()
        gemini = http.post(GEMINI_PATH, json=gemini_body("x " * 400)).json()["usageMetadata"]
    # openai/chat-text-basic.json, anthropic/messages-thinking-tokens-detail.json,
    # gemini/generate-implicit-cache-and-thoughts.json
    assert keys(openai) == {
        "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
        "prompt_tokens_details.cached_tokens", "prompt_tokens_details.audio_tokens",
        "completion_tokens_details", "completion_tokens_details.reasoning_tokens",
        "completion_tokens_details.audio_tokens",
        "completion_tokens_details.accepted_prediction_tokens",
        "completion_tokens_details.rejected_prediction_tokens",
    }  # fmt: skip
    assert keys(anthropic["usage"]) == {
        "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
        "cache_creation", "cache_creation.ephemeral_5m_input_tokens",
        "cache_creation.ephemeral_1h_input_tokens", "output_tokens", "output_tokens_details",
        "output_tokens_details.thinking_tokens", "service_tier",
    }  # fmt: skip
    assert set(gemini) == {
        "promptTokenCount", "candidatesTokenCount", "totalTokenCount", "cachedContentTokenCount",
        "promptTokensDetails", "cacheTokensDetails", "thoughtsTokenCount",
    }  # fmt: skip
    if FIXTURES.is_dir():  # and against the recordings themselves, where they are at hand
        recorded = json.loads((FIXTURES / "openai/chat-text-basic.json").read_text())
        assert keys(recorded["response"]["body"]["usage"]) == keys(openai)


def test_reasoning_and_cache_follow_each_providers_convention() -> None:
    models = ("gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash")
    config = SimConfig(
        models={m: SimModelConfig(reasoning_tokens=50, cached_share=0.5) for m in models}
    )
    with SimThread(config) as sim, httpx.Client(base_url=sim.base_url) as http:
        openai = http.post("/v1/chat/completions", json=openai_body("x " * 400)).json()["usage"]
        anthropic = http.post("/v1/messages", json=anthropic_body("x " * 400, CLASSIFY)).json()
        gemini = http.post(GEMINI_PATH, json=gemini_body("x " * 400)).json()["usageMetadata"]
    # OpenAI: cached inside prompt_tokens, reasoning inside completion_tokens.
    assert openai["prompt_tokens_details"]["cached_tokens"] == openai["prompt_tokens"] // 2
    assert openai["completion_tokens"] > openai["completion_tokens_details"]["reasoning_tokens"]
    assert openai["completion_tokens_details"]["reasoning_tokens"] == 50
    # Anthropic: cache reads outside input_tokens, thinking inside output_tokens.
    usage = anthropic["usage"]
    assert usage["cache_read_input_tokens"] in (usage["input_tokens"], usage["input_tokens"] - 1)
    assert usage["output_tokens"] > usage["output_tokens_details"]["thinking_tokens"] == 50
    # Gemini: cached inside promptTokenCount, thoughts outside candidatesTokenCount.
    assert gemini["cachedContentTokenCount"] == gemini["promptTokenCount"] // 2
    assert gemini["thoughtsTokenCount"] == 50
    total = gemini["promptTokenCount"] + gemini["candidatesTokenCount"] + 50
    assert gemini["totalTokenCount"] == total


def test_stats_sum_the_usage_billed_per_model(client: httpx.Client, sim: SimThread) -> None:
    sim.patch(models={"gpt-4o-mini": {"reasoning_tokens": 7, "cached_share": 0.25}})
    billed = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0}
    for i in range(5):
        usage = client.post("/v1/chat/completions", json=openai_body(f"bug {i} " * i)).json()
        billed["input_tokens"] += usage["usage"]["prompt_tokens"]
        billed["cached_input_tokens"] += usage["usage"]["prompt_tokens_details"]["cached_tokens"]
        billed["output_tokens"] += usage["usage"]["completion_tokens"]
    client.post("/v1/messages", json=anthropic_body("x", CLASSIFY))
    stats = client.get("/stats").json()
    bill = stats["models"]["gpt-4o-mini"]
    assert {k: bill[k] for k in billed} == billed
    assert bill["calls"] == bill["ok"] == 5 and bill["reasoning_tokens"] == 35
    assert stats["requests"] == 6 and stats["by_protocol"] == {"openai": 5, "anthropic": 1}
    claude = stats["models"]["claude-haiku-4-5"]
    assert stats["usage"]["input_tokens"] == billed["input_tokens"] + claude["input_tokens"]
    assert sim.stats() == stats


# -- auth, unknown models, bad requests -------------------------------------------------


def test_api_key_is_enforced_in_each_protocols_way() -> None:
    with SimThread(SimConfig(api_key="sk-sim")) as sim, httpx.Client(base_url=sim.base_url) as http:
        wrong = {"authorization": "Bearer nope", "x-api-key": "nope", "x-goog-api-key": "nope"}
        openai = http.post("/v1/chat/completions", json=openai_body("x"), headers=wrong)
        assert openai.status_code == 401
        assert openai.json()["error"]["code"] == "invalid_api_key"
        assert "nope" not in openai.text
        anthropic = http.post("/v1/messages", json=anthropic_body("x", CLASSIFY), headers=wrong)
        assert anthropic.status_code == 401
        assert anthropic.json()["error"]["type"] == "authentication_error"
        gemini = http.post(GEMINI_PATH, json=gemini_body("x"), headers=wrong)
        assert gemini.status_code == 400
        assert gemini.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        assert http.post(GEMINI_PATH, json=gemini_body("x")).status_code == 403  # no key at all

        right = {"authorization": "Bearer sk-sim"}
        ok = http.post("/v1/chat/completions", json=openai_body("x"), headers=right)
        assert ok.status_code == 200
        ok = http.post("/v1/chat/completions", json=openai_body("x"), headers={"api-key": "sk-sim"})
        assert ok.status_code == 200
        body = anthropic_body("x", CLASSIFY)
        ok = http.post("/v1/messages", json=body, headers={"x-api-key": "sk-sim"})
        assert ok.status_code == 200
        ok = http.post(GEMINI_PATH, json=gemini_body("x"), headers={"x-goog-api-key": "sk-sim"})
        assert ok.status_code == 200
        assert sim.stats()["auth_failures"] == 4


def test_strict_models_answer_404_for_unknown_models() -> None:
    config = SimConfig(models={"gpt-4o-mini": SimModelConfig()})
    with SimThread(config, strict_models=True) as sim, httpx.Client(base_url=sim.base_url) as http:
        assert http.post("/v1/chat/completions", json=openai_body("x")).status_code == 200
        missing = http.post("/v1/chat/completions", json=openai_body("x", model="gpt-9"))
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"
        gemini = http.post(GEMINI_PATH, json=gemini_body("x"))
        assert gemini.status_code == 404 and gemini.json()["error"]["status"] == "NOT_FOUND"


def test_malformed_requests_get_provider_shaped_400s(client: httpx.Client) -> None:
    no_max_tokens = anthropic_body("x", CLASSIFY)
    del no_max_tokens["max_tokens"]
    anthropic = client.post("/v1/messages", json=no_max_tokens)
    assert anthropic.status_code == 400
    assert anthropic.json()["error"]["type"] == "invalid_request_error"
    openai = client.post("/v1/chat/completions", content=b"{not json")
    assert openai.status_code == 400 and openai.json()["error"]["type"] == "invalid_request_error"
    streamed = client.post("/v1/chat/completions", json=openai_body("x", stream=True))
    assert streamed.status_code == 400 and "stream" in streamed.json()["error"]["message"]


# -- latency and the entry points -------------------------------------------------------


async def test_latency_is_per_request_and_calls_overlap() -> None:
    server = await start_sim(SimConfig(latency_ms=100))
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            started = time.monotonic()
            replies = await asyncio.gather(
                *(http.post("/v1/chat/completions", json=openai_body("x")) for _ in range(10))
            )
            elapsed = time.monotonic() - started
    finally:
        await server.stop()
    assert all(r.status_code == 200 for r in replies)
    assert 0.1 <= elapsed < 0.9
    assert server.stats()["max_in_flight"] == 10


def test_health(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_wait_for_returns_once_the_condition_holds(sim: SimThread) -> None:
    with httpx.Client(base_url=sim.base_url) as http:
        for _ in range(3):
            http.post("/v1/chat/completions", json=openai_body("x"))
    assert sim.wait_for(lambda s: s["ok"] == 3, timeout=5)["requests"] == 3
    with pytest.raises(TimeoutError):
        sim.wait_for(lambda s: s["ok"] > 3, timeout=0.05)
