"""The shared adapter: one pooled HTTP client per provider, timing, error mapping, usage checks."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import aiohttp
import httpx
import pydantic_core

from providers.classify import provider_error
from providers.http1 import Http1Sender
from providers.ratelimits import parse_rate_limit
from providers.redaction import redact
from providers.tokens import estimate_tokens
from providers.transport import HttpAnswer, HttpxSender, Sender
from schemas.completion import Completion, CompletionRequest, RateLimitState, Usage
from schemas.config import ModelConfig, ProviderConfig
from schemas.errors import (
    ConnectionFailed,
    InvalidOutput,
    ProviderError,
    Refusal,
    ServerError,
    Timeout,
)

log = logging.getLogger(__name__)

_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_TOOL_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_ANSWER_KEYS = ("choices", "content", "candidates")  # a 200 body holding any of these answered


@dataclass(frozen=True)
class HttpCall:
    """One POST, as a protocol module builds it; auth headers are added by the base."""

    url: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str | dict[str, Any]  # JSON text (OpenAI) or an object (Anthropic, Gemini)


@dataclass
class Reply:
    """One answer read out of its wire format, before the checks every protocol shares."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None  # None = the provider reported none
    finish_reason: str | None = None
    response_id: str | None = None
    refusal: str | None = None  # why the model declined or a filter fired
    provider_cost_usd: float | None = None


def as_count(value: Any) -> int:
    """A token count from a usage field; absent or malformed counts as 0."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def iter_sse_events(text: str) -> Iterator[dict[str, Any]]:
    """The JSON `data:` payloads of an SSE stream (LF or CRLF framed), skipping `[DONE]`."""
    data: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line.strip() and data:
            payload = "\n".join(data)
            data = []
            if payload == "[DONE]":
                continue
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event


def output_limit(model: ModelConfig, request: CompletionRequest) -> int:
    """Max output tokens for the call: what the job asks, within what the model allows."""
    return min(request.max_output_tokens, model.max_output_tokens)


def tool_name(request: CompletionRequest) -> str:
    """The request's schema name as a valid function/tool name (^[A-Za-z0-9_-]{1,64}$)."""
    return _tool_name(request.schema_name)


@lru_cache(maxsize=1024)
def _tool_name(schema_name: str) -> str:
    """Cached: a workload has a few schema names, and each call needs its name twice."""
    return _TOOL_NAME_CHARS.sub("_", schema_name)[:64] or "output"


def schema_instruction(request: CompletionRequest) -> str:
    """For endpoints without schema enforcement: ask for the bare JSON object in words."""
    schema = json.dumps(request.output_schema, separators=(",", ":"))
    return (
        "Answer with only a JSON object (no prose, no code fences) that is valid against "
        f"this JSON Schema: {schema}"
    )


def parse_json_answer(text: str) -> Any:
    """The JSON value of an answer; tolerates code fences and text around one object."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        return json.loads(stripped)
    except ValueError:
        start, end = stripped.find("{"), stripped.rfind("}")
        if 0 <= start < end:
            return json.loads(stripped[start : end + 1])
        raise


def _transport_error(exc: BaseException) -> type[ProviderError]:
    """Timeout or connection, from an aiohttp or httpx exception or whatever caused it
    (httpx-style transports over aiohttp map refused connections to ConnectTimeout)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(e, TimeoutError) for e in chain):
        return Timeout
    if any(isinstance(e, aiohttp.ClientError) for e in chain):
        return ConnectionFailed
    return Timeout if isinstance(exc, httpx.TimeoutException) else ConnectionFailed


class ProviderAdapter(ABC):
    """Calls one provider; subclasses speak one wire protocol (build a call, read a reply)."""

    protocol: ClassVar[str]
    upstream_error_path: str | None = None  # a gateway's nested upstream error text

    def __init__(
        self, provider: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.provider = provider
        key = provider.api_key.get_secret_value() if provider.api_key else ""
        self._secrets = (key,) if key else ()
        self._sender: Sender = (
            HttpxSender(transport, provider.timeout_s)
            if transport is not None
            else Http1Sender(provider.max_concurrency, provider.timeout_s)
        )
        self._headers = {
            "content-type": "application/json",
            **self.static_headers(),
            **(self.auth_headers(key) if key else {}),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider.name!r}, {self.provider.base_url!r})"

    @property
    def name(self) -> str:
        return self.provider.name

    # --- the protocol's part -------------------------------------------------------------

    @abstractmethod
    def auth_headers(self, api_key: str) -> dict[str, str]: ...

    def static_headers(self) -> dict[str, str]:
        return {}

    @abstractmethod
    def build_call(self, model: ModelConfig, request: CompletionRequest) -> HttpCall: ...

    @abstractmethod
    def parse_reply(self, payload: dict[str, Any]) -> Reply: ...

    @abstractmethod
    def parse_stream(self, text: str) -> Reply: ...

    # --- the shared part ------------------------------------------------------------------

    async def complete(self, model: ModelConfig, request: CompletionRequest) -> Completion:
        """One call; returns the normalized completion or raises one classified ProviderError."""
        call = self.build_call(model, request)
        started = time.perf_counter()
        response = await self._post(call, model)
        latency_ms = (time.perf_counter() - started) * 1000
        rate_limit = parse_rate_limit(response.headers)
        if not response.is_success:
            raise self._http_error(response.status_code, response.text, response, model, rate_limit)
        reply = self._read_reply(response, model, rate_limit)
        return self.completion_from_reply(model, request, reply, latency_ms, rate_limit)

    def completion_from_reply(
        self,
        model: ModelConfig,
        request: CompletionRequest,
        reply: Reply,
        latency_ms: float,
        rate_limit: RateLimitState | None,
    ) -> Completion:
        """A parsed reply as a validated completion, or the billed error it amounts to.

        One place for sync calls and batched answers alike, so both are read the same way."""
        usage = reply.usage or self._estimate_usage(model, request, reply)
        if reply.refusal is not None:
            message = f"{self.name} {model.name}: model declined: {reply.refusal}"
            raise self._billed(Refusal, message, model, usage, rate_limit)
        output, text = self._output(model, request, reply, usage, rate_limit)
        return Completion(
            output=output,
            text=text,
            usage=usage,
            provider=self.name,
            model=model.name,
            response_id=reply.response_id,
            finish_reason=reply.finish_reason,
            latency_ms=latency_ms,
            provider_cost_usd=reply.provider_cost_usd,
            rate_limit=rate_limit,
        )

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def _post(self, call: HttpCall, model: ModelConfig) -> HttpAnswer:
        body = pydantic_core.to_json(call.body)  # UTF-8 JSON, 3x faster than json.dumps
        try:
            async with asyncio.timeout(self.provider.timeout_s):
                return await self._sender.post(call.url, body, self._headers)
        except (OSError, httpx.HTTPError, aiohttp.ClientError) as exc:  # OSError: TimeoutError too
            cls = _transport_error(exc)
            what = (
                f"timed out (limit {self.provider.timeout_s:g}s)"
                if cls is Timeout
                else "connection failed"
            )
            detail = redact(f"{type(exc).__name__}: {exc}".rstrip(": "), self._secrets)
            raise cls(
                f"{self.name} {model.name}: {what}: {detail}", provider=self.name, model=model.name
            ) from None

    def _http_error(
        self,
        status: int,
        body: str,
        response: HttpAnswer,
        model: ModelConfig,
        rate_limit: RateLimitState | None,
    ) -> ProviderError:
        return provider_error(
            status,
            body,
            response.headers,
            provider=self.name,
            model=model.name,
            secrets=self._secrets,
            rate_limit=rate_limit,
            upstream_path=self.upstream_error_path,
        )

    def _read_reply(
        self, response: HttpAnswer, model: ModelConfig, rate_limit: RateLimitState | None
    ) -> Reply:
        if "text/event-stream" in response.headers.get("content-type", ""):
            return self.parse_stream(response.text)
        try:
            payload = response.json()
        except ValueError:
            error = ServerError(
                redact(
                    f"{self.name} {model.name}: answer is not JSON: {response.text[:200]}",
                    self._secrets,
                ),
                provider=self.name,
                model=model.name,
                status=response.status_code,
                rate_limit=rate_limit,
            )
            raise error from None
        if not isinstance(payload, dict):
            payload = {}
        if isinstance(payload.get("error"), dict) and not any(k in payload for k in _ANSWER_KEYS):
            # gateways (OpenRouter) report some upstream failures inside a 200
            code = payload["error"].get("code")
            status = code if isinstance(code, int) and 400 <= code < 600 else 502
            raise self._http_error(status, response.text, response, model, rate_limit)
        return self.parse_reply(payload)

    def _output(
        self,
        model: ModelConfig,
        request: CompletionRequest,
        reply: Reply,
        usage: Usage,
        rate_limit: RateLimitState | None,
    ) -> tuple[Any, str]:
        """(output, text): the text itself, or the parsed JSON object for structured calls."""
        if request.output_schema is None:
            return reply.text, reply.text
        wanted = tool_name(request)
        call = next((c for c in reply.tool_calls if c.name == wanted), None)
        call = call or (reply.tool_calls[0] if reply.tool_calls else None)
        raw = call.arguments if call is not None else reply.text
        if not isinstance(raw, str):
            return raw, json.dumps(raw, ensure_ascii=False)
        try:
            return parse_json_answer(raw), raw
        except ValueError:
            cut = (
                " (cut off by max tokens)"
                if reply.finish_reason in ("length", "max_tokens", "MAX_TOKENS")
                else ""
            )
            message = f"{self.name} {model.name}: answer is not valid JSON{cut}: {raw[:200]!r}"
            raise self._billed(InvalidOutput, message, model, usage, rate_limit) from None

    def _billed(
        self,
        cls: type[ProviderError],
        message: str,
        model: ModelConfig,
        usage: Usage,
        rate_limit: RateLimitState | None,
    ) -> ProviderError:
        """An error for an answered (hence billed) call, carrying its usage."""
        return cls(
            redact(message, self._secrets),
            provider=self.name,
            model=model.name,
            status=200,
            billed=True,
            usage=usage,
            rate_limit=rate_limit,
        )

    def _estimate_usage(
        self, model: ModelConfig, request: CompletionRequest, reply: Reply
    ) -> Usage:
        """The provider sent no usage: count it ourselves, and say so, rather than bill zero."""
        prompt = "\n".join(p for p in (request.system, request.prompt) if p)
        if request.output_schema is not None:
            prompt += json.dumps(request.output_schema)
        answer = reply.text + "".join(
            c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments)
            for c in reply.tool_calls
        )
        usage = Usage(
            input_tokens=estimate_tokens(prompt),
            output_tokens=estimate_tokens(answer),
            estimated=True,
        )
        log.warning(
            "%s %s reported no token usage; estimated %d input / %d output tokens",
            self.name,
            model.name,
            usage.input_tokens,
            usage.output_tokens,
        )
        return usage
