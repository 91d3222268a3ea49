"""Gemini batch mode: models/{model}:batchGenerateContent with inlined requests, then the
long-running operation `batches/{id}` is polled until done; responses come back inlined."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

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
    match_outcomes,
    parse_time,
)
from schemas.completion import CompletionRequest
from schemas.config import ModelConfig

_STATE = {
    "BATCH_STATE_PENDING": OPEN,
    "BATCH_STATE_RUNNING": OPEN,
    "BATCH_STATE_SUCCEEDED": ENDED,
    "BATCH_STATE_CANCELLED": CANCELLED,
    "BATCH_STATE_EXPIRED": EXPIRED,
    "BATCH_STATE_FAILED": FAILED,
}


class GeminiBatchClient(BatchClient):
    max_requests = 10_000  # inlined requests must stay under 20 MB

    def _api_root(self) -> str:
        return self.base_url  # .../v1beta

    async def submit(self, model: ModelConfig, entries: list[BatchEntry]) -> str:
        requests = [
            {
                "request": self.adapter.build_call(model, e.request).body,
                "metadata": {"key": e.custom_id},
            }
            for e in entries
        ]
        model_id = quote(model.model.removeprefix("models/"), safe="")
        body = {
            "batch": {
                "display_name": f"frugal-{model.name}",
                "input_config": {"requests": {"requests": requests}},
            }
        }
        url = f"{self._api_root()}/models/{model_id}:batchGenerateContent"
        data = await self._json("POST", url, model.name, json=body)
        return str(data["name"])  # "batches/..."

    async def state(self, batch_id: str) -> BatchState:
        return self._state(await self._json("GET", f"{self._api_root()}/{batch_id}"))

    async def cancel(self, batch_id: str) -> BatchState:
        await self._send("POST", f"{self._api_root()}/{batch_id}:cancel")
        return await self.state(batch_id)

    @staticmethod
    def _state(data: dict[str, Any]) -> BatchState:
        meta = data.get("metadata") or {}
        state = str(meta.get("state") or "")
        response = data.get("response") or {}
        inlined = (response.get("inlinedResponses") or {}).get("inlinedResponses") or []
        stats = meta.get("batchStats") or {}
        return BatchState(
            batch_id=str(data.get("name")),
            status=_STATE.get(state, OPEN),
            provider_status=state,
            requests=int(stats.get("requestCount") or 0),
            ended_at=parse_time(meta.get("endTime")),
            inline_results=[r for r in inlined if isinstance(r, dict)],
        )

    async def results(
        self, state: BatchState, model: ModelConfig, requests: dict[str, CompletionRequest]
    ) -> list[BatchOutcome]:
        def read(cid: str, item: dict[str, Any]) -> BatchOutcome | None:
            if isinstance(item.get("response"), dict):
                return self.outcome_of_answer(cid, model, requests[cid], item["response"])
            if isinstance(item.get("error"), dict):
                code = int(item["error"].get("code") or 500)
                return self.outcome_of_error(cid, model, code, {"error": item["error"]})
            return None

        return match_outcomes(
            requests, state.inline_results,
            lambda item: str((item.get("metadata") or {}).get("key")), read,
        )  # fmt: skip
