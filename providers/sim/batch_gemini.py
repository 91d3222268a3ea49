"""The simulated Gemini batch mode: `batchGenerateContent` and operation polling."""

from __future__ import annotations

import random
from typing import Any

from aiohttp import web

from providers.sim.batch_book import BatchBook, SimBatch, iso


class GeminiBatchRoutes(BatchBook):
    """Gemini's batch routes over the shared book."""

    async def _gemini_create(self, request: web.Request, model: str) -> web.Response:
        body = await request.json()
        if self._refused():
            return web.json_response(
                {
                    "error": {
                        "code": 429,
                        "message": "Resource has been exhausted (batch queue).",
                        "status": "RESOURCE_EXHAUSTED",
                    }
                },
                status=429,
            )
        inlined = ((body.get("batch") or {}).get("input_config") or {}).get("requests", {}).get(
            "requests"
        ) or []
        items = [(str((r.get("metadata") or {}).get("key")), r["request"]) for r in inlined]
        batch = self._new("gemini", model, items)
        return web.json_response(self._gemini_operation(batch))

    def _gemini_state(self, batch_id: str, cancel: bool) -> web.Response:
        batch = self._find(batch_id)
        if batch is None:
            return self._missing(batch_id)
        if cancel:
            self._cancel(batch)
            return web.json_response({})
        return web.json_response(self._gemini_operation(batch))

    def _gemini_operation(self, batch: SimBatch) -> dict[str, Any]:
        state = {
            "in_progress": "BATCH_STATE_RUNNING",
            "ended": "BATCH_STATE_SUCCEEDED",
            "canceled": "BATCH_STATE_CANCELLED",
            "expired": "BATCH_STATE_EXPIRED",
        }[batch.status]
        meta = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{batch.model}",
            "name": batch.id,
            "state": state,
            "createTime": iso(batch.created),
            "endTime": iso(batch.ended),
            "batchStats": {"requestCount": str(len(batch.items))},
        }
        op: dict[str, Any] = {"name": batch.id, "metadata": meta, "done": not batch.open}
        if batch.status == "ended":
            responses = []
            for cid, _ in batch.items:
                r = batch.results[cid]
                entry = (
                    {"response": r["ok"]}
                    if "ok" in r
                    else {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}
                )
                responses.append({**entry, "metadata": {"key": cid}})
            random.Random(7).shuffle(responses)
            op["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                "inlinedResponses": {"inlinedResponses": responses},
            }
        return op
