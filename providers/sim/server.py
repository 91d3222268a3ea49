"""Simulator server: handlers, fault injection and rate limits behind the three wire formats."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from providers.sim.answers import answer
from providers.sim.batch import SimBatches
from providers.sim.cache import PromptCache
from providers.sim.state import RequestBucket, SimStats
from providers.sim.wire import (
    BadRequest,
    ErrorKind,
    LimitView,
    Reply,
    SimRequest,
    SimUsage,
    Wire,
    count_tokens,
    truncate,
)
from providers.sim.wire_anthropic import AnthropicWire
from providers.sim.wire_gemini import GeminiWire
from providers.sim.wire_openai import OpenAIWire
from schemas.config import SimConfig, SimModelConfig

_DEFAULT_MODEL = SimModelConfig()
_GEMINI_PATH = re.compile(r"(.*?)/v1(?:beta|alpha)?/models/([^/:]+):generateContent")
_AZURE_PATH = re.compile(r"(.*?)/openai/deployments/([^/]+)")
_TOOL_CALL_OVERHEAD = 10  # tokens a real model spends on the call's envelope


def route_of(path: str) -> tuple[str, str, str | None] | None:
    """(protocol, account, model named in the path) for a call path, or None.

    The account is whatever precedes the protocol's own path (`/deepseek/v1/chat/completions`
    -> `/deepseek`), so several simulated providers of one protocol can share a port and still
    have separate rate limits.
    """
    if path.endswith("/chat/completions"):
        head = path[: -len("/chat/completions")]
        azure = _AZURE_PATH.fullmatch(head)
        if azure:
            return "openai", azure.group(1) + "/azure", azure.group(2)
        return "openai", head.removesuffix("/v1"), None
    if path.endswith("/messages"):
        return "anthropic", path[: -len("/messages")].removesuffix("/v1"), None
    gemini = _GEMINI_PATH.fullmatch(path)
    if gemini:
        return "gemini", gemini.group(1), gemini.group(2)
    return None


def _singled_out(config: SimConfig, req: SimRequest) -> bool:
    """A call the outage is set to hit whatever the dice say (`overloaded_matching`)."""
    marker = config.overloaded_matching
    return marker is not None and marker in req.user_text


def _json_reply(reply: Reply) -> web.Response:
    body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
    return web.Response(body=body.encode(), status=reply.status, headers=reply.headers)


class SimServer:
    """The simulator's state and handlers; `start_sim` binds it to a port."""

    def __init__(self, config: SimConfig, *, strict_models: bool = False) -> None:
        self.config = config
        self.strict_models = strict_models  # unknown model ids get 404 instead of defaults
        self.port = 0
        self.host = "127.0.0.1"
        self._wires: dict[str, Wire] = {
            "openai": OpenAIWire(),
            "anthropic": AnthropicWire(),
            "gemini": GeminiWire(),
        }
        self._runner: web.AppRunner | None = None
        self._session = os.urandom(6).hex()
        self.reset()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Zero the counters, refill every rate bucket and restart the fault sequence."""
        self._stats = SimStats()
        self._buckets: dict[str, RequestBucket] = {}
        self._faults = random.Random(0)
        self._next_id = 0
        self.prompt_cache = PromptCache()
        self.batches = SimBatches(self)

    def stats(self) -> dict[str, Any]:
        return {**self._stats.snapshot(), "batch": self.batches.snapshot()}

    def patch(self, **fields: Any) -> SimConfig:
        """Change settings at run time (e.g. `fail_rate=1.0` for an outage); `models` merge."""
        self.strict_models = bool(fields.pop("strict_models", self.strict_models))
        data = self.config.model_dump()
        for key, value in fields.items():
            if key == "models" and isinstance(value, Mapping):
                for name, model in value.items():
                    data["models"][name] = {**data["models"].get(name, {}), **(model or {})}
            else:
                data[key] = value
        config = SimConfig.model_validate(data)
        if config.rpm != self.config.rpm:
            self._buckets.clear()
        self.config = config
        return config

    def public_config(self) -> dict[str, Any]:
        data = self.config.model_dump(exclude={"api_key"})
        data["api_key_required"] = self.config.api_key is not None
        data["strict_models"] = self.strict_models
        return data

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats", self._stats_handler)
        app.router.add_get("/admin/config", self._config_handler)
        app.router.add_post("/admin/config", self._patch_handler)
        app.router.add_post("/admin/reset", self._reset_handler)
        app.router.add_get("/{tail:.*}", self._batch_call)
        app.router.add_post("/{tail:.*}", self._call)
        return app

    async def listen(self, host: str, port: int) -> None:
        """Bind to `host:port` (0 = any free port) and serve in the running loop."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=2048, reuse_address=True).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- admin ---------------------------------------------------------------------------

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _stats_handler(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _config_handler(self, _: web.Request) -> web.Response:
        return web.json_response(self.public_config())

    async def _patch_handler(self, request: web.Request) -> web.Response:
        try:
            fields = await request.json()
            if not isinstance(fields, dict):
                raise ValueError("expected a JSON object of SimConfig fields")
            self.patch(**fields)
        except ValueError as exc:  # also pydantic's ValidationError
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.public_config())

    async def _reset_handler(self, _: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"status": "reset"})

    # -- provider calls ------------------------------------------------------------------

    async def _batch_call(self, request: web.Request) -> web.Response:
        handled = await self.batches.handle(request)
        return handled or web.json_response({"error": {"message": "not found"}}, status=404)

    async def _call(self, request: web.Request) -> web.Response:
        if (handled := await self.batches.handle(request)) is not None:
            return handled
        route = route_of(request.path)
        if route is None:
            return web.json_response(
                {"error": {"message": f"no such path {request.path}"}}, status=404
            )
        protocol, account, path_model = route
        wire = self._wires[protocol]
        stats = self._stats
        stats.requests += 1
        stats.by_protocol[protocol] += 1
        self._next_id += 1
        rid = f"req_{self._session}{self._next_id:016x}"
        model = path_model or ""
        config = self.config
        if config.api_key is not None:
            key = wire.api_key(request.headers, request.query)
            if key != config.api_key:
                stats.auth_failures += 1
                kind: ErrorKind = "auth_missing" if not key else "auth_invalid"
                return _json_reply(wire.error(kind, None, rid, model, key=key or ""))
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise BadRequest("The request body must be a JSON object.")
            if body.get("stream") is True:
                raise BadRequest("The provider simulator does not stream; send stream=false.")
            req = wire.parse(body, path_model)
        except json.JSONDecodeError:
            stats.bad_requests += 1
            detail = "We could not parse the JSON body of your request."
            return _json_reply(wire.error("invalid_request", None, rid, model, detail))
        except (BadRequest, ValueError, TypeError, AttributeError, KeyError) as exc:
            # A field of the wrong shape is the caller's mistake: a 400, as a provider would say.
            stats.bad_requests += 1
            detail = str(exc) if isinstance(exc, BadRequest) else f"Invalid request body: {exc!r}"
            return _json_reply(wire.error("invalid_request", None, rid, model, detail))
        return await self._answer(wire, f"{protocol}{account}", req, rid)

    async def _answer(self, wire: Wire, account: str, req: SimRequest, rid: str) -> web.Response:
        stats, config = self._stats, self.config
        bill = stats.model(req.model)
        bill.calls += 1
        if self.strict_models and req.model not in config.models:
            stats.not_found += 1
            return _json_reply(wire.error("not_found", None, rid, req.model))
        bucket = self._bucket(account)
        now = time.monotonic()
        wait = bucket.take(now)
        if wait > 0:
            stats.rate_limited += 1
            bill.rate_limited += 1
            view = bucket.view(now, retry_after_s=wait)
            return _json_reply(wire.error("rate_limited", view, rid, req.model))
        fault = self._faults.random()
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if config.latency_ms > 0:
                await asyncio.sleep(config.latency_ms / 1000)
        finally:
            stats.in_flight -= 1
        config = self.config  # a patch may have landed while we slept
        if fault < config.fail_rate + config.overloaded_rate or _singled_out(config, req):
            bill.errors_injected += 1
            kind: ErrorKind = "server_error" if fault < config.fail_rate else "overloaded"
            if kind == "server_error":
                stats.server_errors += 1
            else:
                stats.overloaded += 1
            return _json_reply(wire.error(kind, bucket.view(now), rid, req.model))
        reply = self._reply(wire, req, bucket.view(now), rid, stats)
        stats.ok += 1
        return _json_reply(reply)

    def _reply(
        self, wire: Wire, req: SimRequest, view: LimitView, rid: str, stats: SimStats
    ) -> Reply:
        """The model's answer, its usage billed into `stats` (the object the call started with:
        a reset while it slept must not leave half a call in the new counters).
        """
        settings = self.config.models.get(req.model, _DEFAULT_MODEL)
        schema = req.schema if req.mode != "text" else None
        ans = answer(
            schema, req.user_text, req.model, settings.invalid_rate, req.mode == "tool",
            settings.wrong_rate,
        )  # fmt: skip
        ans.text, req.truncated = truncate(ans.text, req.max_tokens)
        if req.truncated:
            ans.value, ans.valid = None, False
        visible = count_tokens(ans.text) + (_TOOL_CALL_OVERHEAD if req.mode == "tool" else 1)
        usage = SimUsage(
            input_tokens=req.prompt_tokens,
            cached_tokens=int(req.prompt_tokens * settings.cached_share),
            output_tokens=visible + settings.reasoning_tokens,
            reasoning_tokens=settings.reasoning_tokens,
        )
        if req.cache_prefix:
            self.prompt_cache.bill(req, usage)
        bill = stats.model(req.model)
        bill.bill(usage)
        if not ans.valid:
            bill.invalid_answers += 1
            stats.invalid_answers += 1
        bill.wrong_answers += ans.wrong
        view.tokens_remaining = max(0, view.tokens_limit - req.prompt_tokens)
        return wire.success(req, ans, usage, view, rid)

    def _bucket(self, account: str) -> RequestBucket:
        bucket = self._buckets.get(account)
        if bucket is None:
            bucket = self._buckets[account] = RequestBucket(self.config.rpm, time.monotonic())
        return bucket
