"""OpenAI Batch API: a JSONL file uploaded with purpose=batch, a batch over it (24h window),
results and errors as JSONL files. One model per input file."""

from __future__ import annotations

import json
from typing import Any

from providers.batch_base import (
    CANCELLED,
    ENDED,
    EXPIRED,
    FAILED,
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

CHAT_ENDPOINT = "/v1/chat/completions"
_STATUS = {
    "validating": OPEN,
    "in_progress": OPEN,
    "finalizing": OPEN,
    "cancelling": OPEN,
    "completed": ENDED,
    "cancelled": CANCELLED,
    "expired": EXPIRED,
    "failed": FAILED,
}


class OpenAIBatchClient(BatchClient):
    max_requests = 50_000

    async def submit(self, model: ModelConfig, entries: list[BatchEntry]) -> str:
        lines = []
        for entry in entries:
            body = self.adapter.build_call(model, entry.request).body
            body["model"] = model.model  # the file holds requests for this one model
            line = {"custom_id": entry.custom_id, "method": "POST", "url": CHAT_ENDPOINT}
            lines.append(json.dumps({**line, "body": body}, separators=(",", ":")))
        content = ("\n".join(lines) + "\n").encode()
        uploaded = await self._json(
            "POST",
            f"{self.base_url}/files",
            model.name,
            data={"purpose": "batch"},
            files={"file": ("frugal-batch.jsonl", content, "application/jsonl")},
        )
        created = await self._json(
            "POST",
            f"{self.base_url}/batches",
            model.name,
            json={
                "input_file_id": uploaded["id"],
                "endpoint": CHAT_ENDPOINT,
                "completion_window": "24h",
                "metadata": {"client": "frugal", "model": model.name},
            },
        )
        return str(created["id"])

    async def state(self, batch_id: str) -> BatchState:
        return self._state(await self._json("GET", f"{self.base_url}/batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> BatchState:
        return self._state(await self._json("POST", f"{self.base_url}/batches/{batch_id}/cancel"))

    @staticmethod
    def _state(data: dict[str, Any]) -> BatchState:
        status = str(data.get("status") or "")
        ended = next(
            (data.get(k) for k in ("completed_at", "cancelled_at", "expired_at", "failed_at")
             if data.get(k)),
            None,
        )  # fmt: skip
        return BatchState(
            batch_id=str(data.get("id")),
            status=_STATUS.get(status, OPEN),
            provider_status=status,
            requests=int((data.get("request_counts") or {}).get("total") or 0),
            ended_at=parse_time(ended),
            results_ref=data.get("output_file_id"),
            errors_ref=data.get("error_file_id"),
        )

    async def results(
        self, state: BatchState, model: ModelConfig, requests: dict[str, CompletionRequest]
    ) -> list[BatchOutcome]:
        lines: list[dict[str, Any]] = []
        for ref in (state.results_ref, state.errors_ref):
            if ref:
                response = await self._send("GET", f"{self.base_url}/files/{ref}/content")
                lines += jsonl_lines(response.text)
        return match_outcomes(
            requests, lines, lambda line: str(line.get("custom_id")),
            lambda cid, line: self._outcome(cid, model, requests[cid], line),
        )  # fmt: skip

    def _outcome(
        self, cid: str, model: ModelConfig, request: CompletionRequest, line: dict[str, Any]
    ) -> BatchOutcome:
        response = line.get("response") or {}
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        if 200 <= status < 300 and isinstance(body, dict):
            return self.outcome_of_answer(cid, model, request, body)
        error = line.get("error") or {}
        if not response and error.get("code") in ("batch_expired", "batch_cancelled"):
            return BatchOutcome(cid)  # never run: resubmit or answer synchronously
        return self.outcome_of_error(cid, model, status or 500, body or {"error": error})
