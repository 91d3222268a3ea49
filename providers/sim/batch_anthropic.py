"""The simulated Anthropic Message Batches API: `/v1/messages/batches` and `results_url`."""

from __future__ import annotations

import json
import random
import re
from typing import Any

from aiohttp import web

from providers.sim.batch_book import BatchBook, SimBatch, iso


def _error(
    status: int, err_type: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """An error in the Message Batches API's shape."""
    body = {"type": "error", "error": {"type": err_type, "message": message}}
    return web.json_response(body, status=status, headers=headers)


class AnthropicBatchRoutes(BatchBook):
    """Anthropic's Message Batches routes over the shared book."""

    async def _anthropic(self, request: web.Request, m: re.Match[str], post: bool) -> web.Response:
        if post and not m.group("id"):
            body = await request.json()
            if self._refused():
                return _error(
                    429, "rate_limit_error", "Too many batches in progress.", {"retry-after": "1"}
                )
            requests = body.get("requests") or []
            for r in requests:
                if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", str(r.get("custom_id"))):
                    return _error(
                        400,
                        "invalid_request_error",
                        "requests.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
                    )
            model = str((requests[0].get("params") or {}).get("model")) if requests else ""
            batch = self._new("anthropic", model, [(r["custom_id"], r["params"]) for r in requests])
            return web.json_response(self._anthropic_batch(batch, request))
        found = self._find(m.group("id") or "")
        if found is None:
            return self._missing(m.group("id") or "")
        batch = found
        if m.group("tail") == "/cancel":
            self._cancel(batch)
        if m.group("tail") == "/results":
            return web.Response(
                body=self._anthropic_results(batch), content_type="application/x-jsonl"
            )
        return web.json_response(self._anthropic_batch(batch, request))

    def _anthropic_batch(self, batch: SimBatch, request: web.Request) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.open:
            counts["processing"] = len(batch.items)
        else:
            for cid, _ in batch.items:
                r = batch.results.get(cid)
                key = (
                    "succeeded"
                    if r and "ok" in r
                    else "errored"
                    if r
                    else ("expired" if batch.status == "expired" else "canceled")
                )
                counts[key] += 1
        base = f"{request.scheme}://{request.host}{request.path.split('/v1/messages/batches')[0]}"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "in_progress" if batch.open else "ended",
            "request_counts": counts,
            "created_at": iso(batch.created),
            "ended_at": iso(batch.ended),
            "expires_at": iso(batch.created + 86400),
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": None if batch.open else f"{base}/v1/messages/batches/{batch.id}/results",
        }

    def _anthropic_results(self, batch: SimBatch) -> bytes:
        lines = []
        for cid, _ in batch.items:
            r = batch.results.get(cid)
            if r and "ok" in r:
                result: dict[str, Any] = {"type": "succeeded", "message": r["ok"]}
            elif r:
                result = {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {"type": "api_error", "message": "Internal server error"},
                    },
                }
            else:
                result = {"type": "expired" if batch.status == "expired" else "canceled"}
            lines.append({"custom_id": cid, "result": result})
        random.Random(7).shuffle(lines)
        return "".join(json.dumps(x) + "\n" for x in lines).encode()
