"""Anthropic Message Batches: POST /v1/messages/batches, poll, then JSONL at `results_url`."""

from __future__ import annotations

from typing import Any

from providers.batch_base import (
    CANCELLED,
    ENDED,
    EXPIRED,
    OPEN,
    BatchClient,
    BatchEntry,
    BatchOutcome,
    BatchState,
    jsonl_lines,
    match_outcomes,
    parse_time,
)
from schemas.completion import CompletionRequest
from schemas.config import ModelConfig

# An errored result names an error type, not a status: the status it stands for, to classify.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicBatchClient(BatchClient):
    max_requests = 100_000

    async def submit(self, model: ModelConfig, entries: list[BatchEntry]) -> str:
        requests = [
            {"custom_id": e.custom_id, "params": self.adapter.build_call(model, e.request).body}
            for e in entries
        ]
        data = await self._json(
            "POST", f"{self.base_url}/messages/batches", model.name, json={"requests": requests}
        )
        return str(data["id"])

    async def state(self, batch_id: str) -> BatchState:
        return self._state(await self._json("GET", f"{self.base_url}/messages/batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> BatchState:
        url = f"{self.base_url}/messages/batches/{batch_id}/cancel"
        return self._state(await self._json("POST", url))

    @staticmethod
    def _state(data: dict[str, Any]) -> BatchState:
        status = str(data.get("processing_status") or "")
        counts = data.get("request_counts") or {}
        total = sum(int(v or 0) for v in counts.values() if isinstance(v, int))
        final = OPEN
        if status == "ended":
            final = ENDED
            if counts.get("canceled") and not counts.get("succeeded"):
                final = CANCELLED
            elif counts.get("expired") and not counts.get("succeeded"):
                final = EXPIRED
        return BatchState(
            batch_id=str(data.get("id")),
            status=final,
            provider_status=status,
            requests=total,
            ended_at=parse_time(data.get("ended_at")),
            results_ref=data.get("results_url"),
        )

    async def results(
        self, state: BatchState, model: ModelConfig, requests: dict[str, CompletionRequest]
    ) -> list[BatchOutcome]:
        lines: list[dict[str, Any]] = []
        if state.results_ref:
            lines = jsonl_lines((await self._send("GET", state.results_ref)).text)
        return match_outcomes(
            requests, lines, lambda line: str(line.get("custom_id")),
            lambda cid, line: self._outcome(cid, model, requests[cid], line),
        )  # fmt: skip

    def _outcome(
        self, cid: str, model: ModelConfig, request: CompletionRequest, line: dict[str, Any]
    ) -> BatchOutcome:
        result = line.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded" and isinstance(result.get("message"), dict):
            return self.outcome_of_answer(cid, model, request, result["message"])
        if kind == "errored":
            body = result.get("error") or {}
            inner = body.get("error") or {}
            return self.outcome_of_error(
                cid, model, _ERROR_STATUS.get(str(inner.get("type")), 500), body
            )
        return BatchOutcome(cid)  # canceled or expired: never run
