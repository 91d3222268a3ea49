"""Replaying recorded provider exchanges over real loopback HTTP, and what each must parse to."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from providers.base import ProviderAdapter
from providers.pricing import ModelPrices, cost_usd, resolve_prices
from providers.registry import build_adapter
from schemas.completion import Completion, CompletionRequest, Usage
from schemas.config import ModelConfig, ProviderConfig
from schemas.errors import ProviderError

SECRET = "sk-test-SECRET-123"
FIXTURES_DIR = Path(
    os.environ.get("FRUGAL_FIXTURES_DIR")
    or Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "providers"
)
_HOP_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "connection"}


def load_fixture(name: str) -> dict[str, Any]:
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"provider fixtures not found at {FIXTURES_DIR} (set FRUGAL_FIXTURES_DIR)")
    return json.loads((FIXTURES_DIR / name).read_text())


def fixture_names(*provider_dirs: str) -> set[str]:
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"provider fixtures not found at {FIXTURES_DIR} (set FRUGAL_FIXTURES_DIR)")
    return {
        p.relative_to(FIXTURES_DIR).as_posix()
        for d in provider_dirs
        for p in (FIXTURES_DIR / d).glob("*.json")
    }


@dataclass
class SeenRequest:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: Any


@dataclass
class Canned:
    status: int
    headers: dict[str, str]
    body: bytes
    delay_s: float = 0.0


class ReplayServer:
    """aiohttp on 127.0.0.1:<free port>; answers every request with the canned response."""

    def __init__(self) -> None:
        self.canned = Canned(500, {}, b"nothing canned")
        self.seen: list[SeenRequest] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def replay(self, fixture: dict[str, Any]) -> None:
        """Serve a recorded response: exact `body_text` bytes when kept, else the JSON body."""
        response = fixture["response"]
        raw = response.get("body_text")
        body = raw.encode() if raw is not None else json.dumps(response["body"]).encode()
        headers = {k: v for k, v in response.get("headers", {}).items() if k not in _HOP_HEADERS}
        self.canned = Canned(response["status"], headers, body)
        self.seen.clear()

    def serve(
        self, status: int, body: Any, headers: dict[str, str] | None = None, delay_s: float = 0.0
    ) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        hdrs = {"content-type": "application/json"} if not isinstance(body, str) else {}
        self.canned = Canned(status, {**hdrs, **(headers or {})}, data, delay_s)
        self.seen.clear()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.seen.append(SeenRequest(request.method, request.path_qs, dict(request.headers), body))
        if self.canned.delay_s:
            await asyncio.sleep(self.canned.delay_s)
        return web.Response(
            status=self.canned.status, headers=self.canned.headers, body=self.canned.body
        )


class Prefix(str):
    """Expected output: a text starting with this."""


@dataclass(frozen=True)
class Case:
    """What one recorded exchange must parse to through its adapter."""

    kind: str = "openai"  # ProviderConfig.kind
    profile: str | None = None
    model: str = "test-model"  # the provider's model id
    caps: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    schema_name: str = "output"
    output: Any = None
    usage: tuple[int, int, int, int, int] | None = None  # in, cached, cache write, out, reasoning
    finish: str | None = None
    error: type[ProviderError] | None = None
    retry_after: float | None = None
    rate_limit: dict[str, float | int | None] = field(default_factory=dict)  # expected subset
    provider_cost: float | None = None
    message_has: str = ""  # expected in the error message


def obj(**properties: str) -> dict[str, Any]:
    """A JSON Schema object with these property types, all required, closed."""
    return {
        "type": "object",
        "properties": {k: {"type": v} for k, v in properties.items()},
        "required": list(properties),
        "additionalProperties": False,
    }


def provider_config(case: Case, base_url: str, **overrides: Any) -> ProviderConfig:
    suffix = {"openai": "/v1", "azure-openai": "", "anthropic": "/v1", "gemini": "/v1beta"}
    return ProviderConfig(
        name=f"{case.profile or case.kind}-replay",
        kind=case.kind,  # type: ignore[arg-type]
        base_url=base_url + suffix[case.kind],
        api_key=SecretStr(SECRET),
        profile=case.profile,
        timeout_s=5,
        **overrides,
    )


def model_config(case: Case, provider: ProviderConfig) -> ModelConfig:
    return ModelConfig(
        name="replayed",
        provider=provider.name,
        model=case.model,
        capabilities=list(case.caps),
        # synthetic prices, so a replay's expected cost does not move with the catalog
        input_per_mtok=1.0,
        cached_input_per_mtok=0.25,
        cache_write_per_mtok=1.25,
        output_per_mtok=4.0,
    )


def expected_cost(usage: tuple[int, int, int, int, int]) -> float:
    inp, cached, written, out, _ = usage
    return ((inp - cached - written) * 1.0 + cached * 0.25 + written * 1.25 + out * 4.0) / 1e6


async def call(
    server: ReplayServer, case: Case, adapter: ProviderAdapter | None = None
) -> tuple[Completion | ProviderError, ProviderAdapter, ModelConfig]:
    provider = provider_config(case, server.url)
    adapter = adapter or build_adapter(provider)
    model = model_config(case, provider)
    request = CompletionRequest(
        system="Be brief.", prompt="Hello", output_schema=case.schema, schema_name=case.schema_name
    )
    try:
        return await adapter.complete(model, request), adapter, model
    except ProviderError as exc:
        return exc, adapter, model
    finally:
        await adapter.aclose()


async def check_replay(server: ReplayServer, name: str, case: Case) -> None:
    """Replay fixture `name` and assert every parsed field against `case`."""
    server.replay(load_fixture(name))
    result, _, model = await call(server, case)
    assert len(server.seen) == 1
    if case.error is not None:
        assert isinstance(result, ProviderError), f"expected {case.error.__name__}, got {result!r}"
        assert type(result) is case.error, f"{name}: got {type(result).__name__}: {result}"
        assert result.retry_after_s == pytest.approx(case.retry_after)
        assert result.provider == provider_config(case, server.url).name
        if case.usage is None:
            assert result.usage is None and not result.billed  # type: ignore[attr-defined]
        else:  # answered and billed, though unusable: the usage travels with the error
            assert result.billed
            assert _usage_tuple(result.usage) == case.usage  # type: ignore[attr-defined]
        assert case.message_has in result.message
        assert SECRET not in str(result) and SECRET not in repr(result)
        _check_rate_limit(result.rate_limit, case)  # type: ignore[attr-defined]
        return
    assert isinstance(result, Completion), f"{name}: unexpected {result!r}"
    if isinstance(case.output, Prefix):
        assert isinstance(result.output, str) and result.output.startswith(case.output)
    else:
        assert result.output == case.output
    assert case.usage is not None
    usage = result.usage
    assert _usage_tuple(usage) == case.usage
    assert usage.estimated is False
    prices: ModelPrices = resolve_prices(model)
    assert cost_usd(prices, usage) == pytest.approx(expected_cost(case.usage), abs=1e-12)
    assert result.finish_reason == case.finish
    assert result.provider_cost_usd == pytest.approx(case.provider_cost)
    assert result.provider == provider_config(case, server.url).name
    assert result.model == "replayed"
    assert result.latency_ms > 0
    _check_rate_limit(result.rate_limit, case)


def _usage_tuple(usage: Usage) -> tuple[int, int, int, int, int]:
    return (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
    )


def _check_rate_limit(state: Any, case: Case) -> None:
    if not case.rate_limit:
        return
    assert state is not None
    for key, value in case.rate_limit.items():
        assert getattr(state, key) == pytest.approx(value), key
