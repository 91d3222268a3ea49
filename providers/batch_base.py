"""The shared part of the provider batch APIs: HTTP, error mapping and reading answers back.

A protocol module (batch_openai, batch_anthropic, batch_gemini) says how to submit a list of
requests, how to read a batch's status and where its results are; answers inside the results
are read by the same adapter that reads synchronous answers, so validation and usage are one.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from providers.base import ProviderAdapter
from providers.classify import provider_error
from providers.redaction import redact
from schemas.completion import Completion, CompletionRequest, Usage
from schemas.config import ModelConfig
from schemas.errors import ConnectionFailed, ProviderError, Timeout

# Batch status, one vocabulary for every provider.
OPEN, ENDED, CANCELLED, EXPIRED, FAILED = "open", "ended", "cancelled", "expired", "failed"
FINAL = (ENDED, CANCELLED, EXPIRED, FAILED)


@dataclass(frozen=True)
class BatchEntry:
    custom_id: str  # ^[a-zA-Z0-9_-]{1,64}$: valid for every provider
    request: CompletionRequest


@dataclass
class BatchState:
    batch_id: str
    status: str  # one of OPEN, ENDED, CANCELLED, EXPIRED, FAILED
    provider_status: str  # the provider's own word
    requests: int = 0
    ended_at: datetime | None = None
    results_ref: str | None = None  # where the results are (file id, URL)
    errors_ref: str | None = None
    inline_results: list[dict[str, Any]] = field(default_factory=list)  # Gemini inlined

    @property
    def final(self) -> bool:
        return self.status in FINAL


@dataclass
class BatchOutcome:
    """One request's end: a completion, a (billed or not) error, or unanswered (expired)."""

    custom_id: str
    completion: Completion | None = None
    error: ProviderError | None = None

    @property
    def unanswered(self) -> bool:
        return self.completion is None and self.error is None


class BatchClient(ABC):
    """One provider's batch API, over the adapter that speaks its synchronous protocol."""

    max_requests: ClassVar[int]

    def __init__(
        self, adapter: ProviderAdapter, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.adapter = adapter
        self.provider = adapter.provider
        self.base_url = self.provider.base_url.rstrip("/")
        headers = {k: v for k, v in adapter._headers.items() if k != "content-type"}
        self._http = httpx.AsyncClient(
            transport=transport, timeout=self.provider.timeout_s, headers=headers
        )

    @property
    def name(self) -> str:
        return self.provider.name

    @abstractmethod
    async def submit(self, model: ModelConfig, entries: list[BatchEntry]) -> str:
        """Create the batch; its id. Raises a classified ProviderError when refused."""

    @abstractmethod
    async def state(self, batch_id: str) -> BatchState: ...

    @abstractmethod
    async def cancel(self, batch_id: str) -> BatchState: ...

    @abstractmethod
    async def results(
        self, state: BatchState, model: ModelConfig, requests: dict[str, CompletionRequest]
    ) -> list[BatchOutcome]:
        """Every request's outcome, matched by custom id (results come in any order)."""

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- shared helpers ------------------------------------------------------------------

    async def _send(self, method: str, url: str, model: str = "", **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise Timeout(self._redact(f"{self.name} batch: timed out: {exc}")) from None
        except httpx.HTTPError as exc:
            raise ConnectionFailed(self._redact(f"{self.name} batch: {exc}")) from None
        if not response.is_success:
            raise self._error(response.status_code, response.text, model, response.headers)
        return response

    async def _json(self, method: str, url: str, model: str = "", **kwargs: Any) -> dict[str, Any]:
        data = (await self._send(method, url, model, **kwargs)).json()
        return data if isinstance(data, dict) else {}

    def _error(
        self, status: int, body: str, model: str, headers: Any = None, usage: Usage | None = None
    ) -> ProviderError:
        return provider_error(
            status,
            body,
            headers or {},
            provider=self.name,
            model=model,
            secrets=self.adapter._secrets,
            rate_limit=None,
            usage=usage,
        )

    def _redact(self, text: str) -> str:
        return redact(text, self.adapter._secrets)

    def answer(
        self, model: ModelConfig, request: CompletionRequest, payload: dict[str, Any]
    ) -> Completion:
        """A batched answer read exactly as a synchronous one (raises billed errors alike)."""
        return self.adapter.completion_from_reply(
            model, request, self.adapter.parse_reply(payload), 0.0, None
        )

    def outcome_of_answer(
        self,
        custom_id: str,
        model: ModelConfig,
        request: CompletionRequest | None,
        payload: dict[str, Any],
    ) -> BatchOutcome:
        if request is None:  # not one of ours: nothing to match it to
            return BatchOutcome(custom_id)
        try:
            return BatchOutcome(custom_id, completion=self.answer(model, request, payload))
        except ProviderError as error:
            return BatchOutcome(custom_id, error=error)

    def outcome_of_error(
        self, custom_id: str, model: ModelConfig, status: int, body: Any
    ) -> BatchOutcome:
        text = body if isinstance(body, str) else json.dumps(body)
        # A failed batch line bills nothing, and says so.
        error = self._error(status, text, model.name, usage=Usage())
        return BatchOutcome(custom_id, error=error)


def match_outcomes(
    requests: dict[str, Any],
    lines: list[dict[str, Any]],
    custom_id: Callable[[dict[str, Any]], str],
    read: Callable[[str, dict[str, Any]], BatchOutcome | None],
) -> list[BatchOutcome]:
    """One outcome per request, matched by custom id (results come back in any order); a
    request no line answers stays unanswered, and lines for unknown ids are ignored."""
    outcomes = {cid: BatchOutcome(cid) for cid in requests}
    for line in lines:
        cid = custom_id(line)
        if cid in outcomes:
            outcomes[cid] = read(cid, line) or outcomes[cid]
    return list(outcomes.values())


def jsonl_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.strip():
            value = json.loads(line)
            if isinstance(value, dict):
                lines.append(value)
    return lines


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 text or epoch seconds -> datetime."""
    if isinstance(value, int | float) and value:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None
