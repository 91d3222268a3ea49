"""`frugal call` as users run it: a subprocess against the simulator (every protocol, one
OpenAI-compatible profile on a path prefix) and against recorded exchanges replayed over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price
from support.frugal_testkit import SIM_KEY, run_frugal, sim_providers, write_config
from support.provider_replay import Case, Prefix, ReplayServer, expected_cost, load_fixture
from test_anthropic_replay import CASES as ANTHROPIC_CASES
from test_compatible_replay import CASES as COMPATIBLE_CASES
from test_gemini_replay import CASES as GEMINI_CASES
from test_openai_replay import CASES as OPENAI_CASES

from cli.call import USAGE_FIELDS
from providers.sim import SimThread
from providers.sim.wire import mask_key
from schemas.config import SimConfig, SimModelConfig

NO_KAFKA = "127.0.0.1:9"  # `call` never touches Kafka
PROMPT = "Classify: the export button crashes the app every time."
LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["billing", "bug", "other"]}},
    "required": ["label"],
    "additionalProperties": False,
}
# provider name -> (routing name, the provider's model id, genai-prices provider id)
MODELS = {
    "openai": ("gpt-4o-mini", "gpt-4o-mini", "openai"),
    "anthropic": ("claude-3-5-haiku", "claude-3-5-haiku-latest", "anthropic"),
    "gemini": ("gemini-2.5-flash", "gemini-2.5-flash", "google"),
    "deepseek": ("deepseek-chat", "deepseek-chat", "deepseek"),
}
CAPABILITIES = {
    "openai": ["json_schema", "tools"],
    "anthropic": ["tools"],
    "gemini": ["json_schema"],
    "deepseek": ["json_object"],
}
SIM = SimConfig(
    api_key=SIM_KEY,
    models={
        "gpt-4o-mini": SimModelConfig(cached_share=0.5, reasoning_tokens=7),
        "claude-3-5-haiku-latest": SimModelConfig(cached_share=0.4),
        "gemini-2.5-flash": SimModelConfig(cached_share=0.25, reasoning_tokens=11),
        "deepseek-chat": SimModelConfig(cached_share=0.5),
    },
)
PROVIDERS = list(MODELS)


def sim_config_file(path: Path, base_url: str, **provider_fields: Any) -> Path:
    """Three native protocols plus DeepSeek's profile under its own path prefix on one sim."""
    providers = sim_providers({"openai": base_url, "anthropic": base_url, "gemini": base_url})
    providers.append(
        {
            "name": "deepseek",
            "kind": "openai",
            "profile": "deepseek",
            "base_url": base_url + "/deepseek/v1",
            "api_key_env": "FRUGAL_TEST_KEY",
            "timeout_s": 10,
        }
    )
    for provider in providers:
        provider.update(provider_fields)
    models = [
        {"name": name, "provider": p, "model": model_id, "capabilities": CAPABILITIES[p]}
        for p, (name, model_id, _) in MODELS.items()
    ]
    return write_config(
        path, prefix="call", data_dir=path.parent / "data", providers=providers, models=models
    )


def frugal_call(config: Path, provider: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["call", "--config", str(config), "--provider", provider]
    if "--model" not in extra:
        args += ["--model", MODELS[provider][0]]
    done = run_frugal([*args, *extra, PROMPT], bootstrap=NO_KAFKA, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    for secret in (SIM_KEY, mask_key(SIM_KEY)):  # the key, or a provider's masked echo of it
        assert secret not in done.stdout + done.stderr
    return done


def one_json_object(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    return value


def provider_error(done: subprocess.CompletedProcess[str], error_type: str) -> dict[str, Any]:
    assert done.returncode == 2, done.stderr
    error = one_json_object(done)["error"]
    assert set(error) == {"type", "message", "retry_after_s"}
    assert error["type"] == error_type, error
    assert error["message"]
    return error


def billed_dollars(catalog_provider: str, model_id: str, bill: dict[str, int]) -> float:
    """The provider's bill priced by genai-prices itself, not by Frugal's pricing code."""
    usage = CatalogUsage(
        input_tokens=bill["input_tokens"],
        cache_read_tokens=bill["cached_input_tokens"],
        output_tokens=bill["output_tokens"],
    )
    return float(calc_price(usage, model_id, provider_id=catalog_provider).total_price)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(SIM) as running:
        yield running


@pytest.fixture(scope="module")
def config(sim: SimThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sim_config_file(tmp_path_factory.mktemp("call") / "frugal.toml", sim.base_url)


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "label.json"
    path.write_text(json.dumps(LABEL_SCHEMA))
    return path


@contextlib.contextmanager
def faulty_sim(
    tmp_path: Path, *, strict_models: bool = False, **fields: Any
) -> Iterator[tuple[SimThread, Path]]:
    """A simulator of its own for one test, and a config file pointing at it."""
    with SimThread(SIM.model_copy(update=fields), strict_models=strict_models) as running:
        yield running, sim_config_file(tmp_path / "frugal.toml", running.base_url)


# --- success: the normalized result equals the provider's own bill ----------------------


@pytest.mark.parametrize("structured", [False, True], ids=["text", "json-schema"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_call_prints_output_usage_and_cost_equal_to_the_bill(
    sim: SimThread, config: Path, schema_file: Path, provider: str, structured: bool
) -> None:
    _, model_id, catalog = MODELS[provider]
    before = sim.stats()["models"].get(model_id, {f: 0 for f in ("calls", *USAGE_FIELDS)})
    extra = ["--json-schema", str(schema_file)] if structured else []
    done = frugal_call(config, provider, *extra)
    assert done.returncode == 0, done.stderr
    result = one_json_object(done)
    assert set(result) == {"output", "usage", "cost_usd"}
    after = sim.stats()["models"][model_id]
    bill = {f: after[f] - before[f] for f in USAGE_FIELDS}
    assert after["calls"] - before["calls"] == 1
    assert result["usage"] == bill  # exactly the five fields, each as the provider billed it
    assert bill["input_tokens"] > 0 and bill["output_tokens"] > 0
    assert bill["cached_input_tokens"] > 0  # every model here reads part of its input from cache
    assert bill["reasoning_tokens"] == SIM.models[model_id].reasoning_tokens
    assert result["cost_usd"] == pytest.approx(billed_dollars(catalog, model_id, bill), rel=1e-9)
    if structured:
        jsonschema.validate(result["output"], LABEL_SCHEMA)
    else:
        assert isinstance(result["output"], str) and result["output"]


def test_call_by_provider_model_id_uses_the_configured_model(config: Path) -> None:
    done = frugal_call(config, "anthropic", "--model", "claude-3-5-haiku-latest")
    assert done.returncode == 0, done.stderr
    assert isinstance(one_json_object(done)["cost_usd"], float)


# --- provider errors: classified, exit 2 -------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_wrong_key_is_an_auth_error(tmp_path: Path, provider: str) -> None:
    other_key = "sk-sim-OTHER-fedcba9876543210"
    with faulty_sim(tmp_path, api_key=other_key) as (running, config):
        done = frugal_call(config, provider)
        assert running.stats()["auth_failures"] == 1
    error = provider_error(done, "auth")
    assert error["retry_after_s"] is None
    if provider in ("openai", "deepseek"):  # OpenAI's wire echoes the key it got, masked
        assert "Incorrect API key provided: [REDACTED]." in error["message"]
    assert other_key not in done.stdout + done.stderr


@pytest.mark.parametrize("provider", PROVIDERS)
def test_exhausted_rate_limit_is_rate_limited_with_the_wait(tmp_path: Path, provider: str) -> None:
    with faulty_sim(tmp_path, rpm=1) as (running, config):
        assert frugal_call(config, provider).returncode == 0  # the minute's one request
        done = frugal_call(config, provider)
        assert running.stats()["rate_limited"] == 1
    error = provider_error(done, "rate_limited")
    assert 50 <= error["retry_after_s"] <= 60  # one request a minute, one just spent


@pytest.mark.parametrize("provider", PROVIDERS)
def test_server_failure_is_server_error(tmp_path: Path, provider: str) -> None:
    with faulty_sim(tmp_path, fail_rate=1.0) as (running, config):
        done = frugal_call(config, provider)
        assert running.stats()["server_errors"] == 1
    provider_error(done, "server_error")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_overload_is_overloaded(tmp_path: Path, provider: str) -> None:
    """Anthropic answers 529, the others 503."""
    with faulty_sim(tmp_path, overloaded_rate=1.0) as (running, config):
        done = frugal_call(config, provider)
        assert running.stats()["overloaded"] == 1
    provider_error(done, "overloaded")


def test_unknown_model_is_not_found(tmp_path: Path) -> None:
    with faulty_sim(tmp_path, strict_models=True) as (_, config):
        done = frugal_call(config, "gemini", "--model", "gemini-9-ultra")
    provider_error(done, "not_found")


def test_unreachable_provider_is_a_connection_error(tmp_path: Path) -> None:
    with faulty_sim(tmp_path) as (_, config):
        pass  # the simulator is gone: nothing listens on its port
    provider_error(frugal_call(config, "openai"), "connection")


# --- config errors: one line on stderr, exit 1 -------------------------------------------


def assert_config_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("frugal: ")
    for text in expected:
        assert text in lines[0]


def test_unknown_provider_is_a_config_error(config: Path) -> None:
    done = frugal_call(config, "openia", "--model", "gpt-4o-mini")
    assert_config_error(done, "unknown provider 'openia'", "openai, anthropic, gemini, deepseek")


def test_unreadable_schema_is_a_config_error(config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert_config_error(
        frugal_call(config, "openai", "--json-schema", str(missing)), str(missing), "cannot read"
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert_config_error(frugal_call(config, "openai", "--json-schema", str(broken)), "not JSON")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"type": "objekt"}))
    assert_config_error(
        frugal_call(config, "openai", "--json-schema", str(invalid)), "not a valid JSON Schema"
    )


def test_missing_key_variable_is_a_config_error(sim: SimThread, tmp_path: Path) -> None:
    config = sim_config_file(
        tmp_path / "frugal.toml", sim.base_url, api_key_env="FRUGAL_TEST_UNSET_KEY"
    )
    requests = sim.stats()["requests"]
    done = frugal_call(config, "anthropic")
    assert_config_error(done, "anthropic", "FRUGAL_TEST_UNSET_KEY is not set")
    assert sim.stats()["requests"] == requests  # nothing was sent


# --- recorded exchanges, replayed, through the CLI ---------------------------------------

RECORDED = {**OPENAI_CASES, **ANTHROPIC_CASES, **GEMINI_CASES, **COMPATIBLE_CASES}
REPLAYED: dict[str, Case] = {
    name: RECORDED[name]
    for name in (
        "openai/chat-cached-tokens.json",
        "openai/chat-json-schema-refusal.json",  # an error that was billed
        "openai/error-429-request-too-large-tpm.json",
        "anthropic/messages-cache-read.json",
        "anthropic/error-429-rate-limit.json",
        "gemini/generate-implicit-cache-and-thoughts.json",
        "gemini/error-429-resource-exhausted-quota.json",
        "deepseek/reasoner-reasoning-content.json",
        "deepseek/error-401-authentication.json",
        "openrouter/chat-usage-cost.json",  # the endpoint's own cost wins
    )
}
_SUFFIX = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}


def replay_config(path: Path, base_url: str) -> Path:
    """One provider per endpoint family at the replay server, one model per fixture."""
    providers: dict[str, dict[str, Any]] = {}
    models = []
    for name, case in REPLAYED.items():
        provider = case.profile or case.kind
        providers[provider] = {
            "name": provider,
            "kind": case.kind,
            "profile": case.profile,
            "base_url": base_url + _SUFFIX[case.kind],
            "api_key_env": "FRUGAL_TEST_KEY",
            "timeout_s": 5,
        }
        models.append(
            {
                "name": name.removesuffix(".json").replace("/", "-"),
                "provider": provider,
                "model": case.model,
                "capabilities": list(case.caps),
                # the replay tests' synthetic prices, so `expected_cost` applies
                "input_per_mtok": 1.0,
                "cached_input_per_mtok": 0.25,
                "cache_write_per_mtok": 1.25,
                "output_per_mtok": 4.0,
            }
        )
    for provider in providers.values():
        if provider["profile"] is None:
            del provider["profile"]
    return write_config(
        path,
        prefix="replay",
        data_dir=path.parent / "data",
        providers=list(providers.values()),
        models=models,
    )


def usage_of(case: Case) -> dict[str, int]:
    assert case.usage is not None
    return dict(zip(USAGE_FIELDS, case.usage, strict=True))


@pytest.mark.parametrize("name", sorted(REPLAYED))
async def test_call_replays_recorded_exchange(
    replay_server: ReplayServer, tmp_path: Path, name: str
) -> None:
    case = REPLAYED[name]
    config = replay_config(tmp_path / "frugal.toml", replay_server.url)
    extra = []
    if case.schema is not None:
        (tmp_path / "schema.json").write_text(json.dumps(case.schema))
        extra = ["--json-schema", str(tmp_path / "schema.json")]
    replay_server.replay(load_fixture(name))
    model = name.removesuffix(".json").replace("/", "-")
    provider = case.profile or case.kind
    done = await asyncio.to_thread(frugal_call, config, provider, "--model", model, *extra)
    assert len(replay_server.seen) == 1
    assert SIM_KEY in json.dumps(replay_server.seen[0].headers)  # the key was sent, in a header
    assert SIM_KEY not in replay_server.seen[0].path_qs
    if case.error is not None:
        error = provider_error(done, case.error.type)
        assert error["retry_after_s"] == pytest.approx(case.retry_after)
        assert case.message_has in error["message"]
        if case.usage is not None:  # answered, so billed: the usage comes along
            result = one_json_object(done)
            assert result["usage"] == usage_of(case)
            assert result["cost_usd"] == pytest.approx(expected_cost(case.usage), abs=1e-12)
        return
    assert done.returncode == 0, done.stderr
    result = one_json_object(done)
    if isinstance(case.output, Prefix):
        assert result["output"].startswith(case.output)
    else:
        assert result["output"] == case.output
    assert result["usage"] == usage_of(case)
    assert case.usage is not None
    wanted = case.provider_cost if case.provider_cost is not None else expected_cost(case.usage)
    assert result["cost_usd"] == pytest.approx(wanted, abs=1e-12)
