"""The simulated OpenAI Batch API: Files (`purpose=batch`) and `/v1/batches`."""

from __future__ import annotations

import json
import random
import re
from typing import Any

from aiohttp import web

from providers.sim.batch_book import BatchBook, SimBatch


class OpenAIBatchRoutes(BatchBook):
    """OpenAI's Files and Batch routes over the shared book."""

    async def _openai(self, request: web.Request, m: re.Match[str], post: bool) -> web.Response:
        if m.group("files"):
            if post and not m.group("id"):
                form = await request.post()
                upload = form.get("file")
                if form.get("purpose") != "batch" or not hasattr(upload, "file"):
                    return web.json_response(
                        {"error": {"message": "purpose=batch and a file are required"}}, status=400
                    )
                file_id = f"file-{len(self.files) + 1:06d}"
                self.files[file_id] = upload.file.read()  # type: ignore[union-attr]
                return web.json_response(
                    {
                        "id": file_id,
                        "object": "file",
                        "purpose": "batch",
                        "bytes": len(self.files[file_id]),
                    }
                )
            content = self.files.get(m.group("id") or "")
            if content is None:
                return self._missing(m.group("id") or "")
            return web.Response(body=content, content_type="application/jsonl")
        if post and not m.group("id"):
            return self._openai_create(await request.json())
        batch = self._find(m.group("id") or "")
        if batch is None:
            return self._missing(m.group("id") or "")
        if m.group("tail") == "/cancel":
            self._cancel(batch)
        return web.json_response(self._openai_batch(batch))

    def _openai_create(self, body: dict[str, Any]) -> web.Response:
        if body.get("completion_window") != "24h" or body.get("endpoint") != "/v1/chat/completions":
            return web.json_response(
                {"error": {"message": "completion_window must be 24h"}}, status=400
            )
        if self._refused():
            message = "Enqueued token limit reached for this model. Please try again later."
            return web.json_response(
                {"error": {"message": message, "type": "requests", "code": "rate_limit_exceeded"}},
                status=429,
                headers={"retry-after": "0.2"},
            )
        lines = [
            json.loads(x)
            for x in self.files.get(body.get("input_file_id", ""), b"").splitlines()
            if x.strip()
        ]
        models = {line["body"].get("model") for line in lines}
        if len(models) != 1:
            return web.json_response(
                {"error": {"message": "a batch file must hold requests for one model"}}, status=400
            )
        batch = self._new("openai", str(models.pop()), [(x["custom_id"], x["body"]) for x in lines])
        return web.json_response(self._openai_batch(batch))

    def _openai_batch(self, batch: SimBatch) -> dict[str, Any]:
        status = {
            "in_progress": "in_progress",
            "ended": "completed",
            "canceled": "cancelled",
            "expired": "expired",
        }[batch.status]
        out, err = self._openai_files(batch)
        done = sum("ok" in r for r in batch.results.values())
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "status": status,
            "completion_window": "24h",
            "created_at": int(batch.created),
            "output_file_id": out,
            "error_file_id": err,
            "completed_at": int(batch.ended) if batch.status == "ended" and batch.ended else None,
            "cancelled_at": int(batch.ended)
            if batch.status == "canceled" and batch.ended
            else None,
            "expired_at": int(batch.ended) if batch.status == "expired" and batch.ended else None,
            "request_counts": {
                "total": len(batch.items),
                "completed": done,
                "failed": len(batch.results) - done,
            },
        }

    def _openai_files(self, batch: SimBatch) -> tuple[str | None, str | None]:
        if batch.open:
            return None, None
        ok: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for cid, _ in batch.items:
            result = batch.results.get(cid)
            if result is None:
                code = "batch_expired" if batch.status == "expired" else "batch_cancelled"
                failed.append(
                    {
                        "id": f"batch_req_{cid}",
                        "custom_id": cid,
                        "response": None,
                        "error": {
                            "code": code,
                            "message": "This request could not be executed before the batch ended.",
                        },
                    }
                )
            elif "ok" in result:
                ok.append(
                    {
                        "id": f"batch_req_{cid}",
                        "custom_id": cid,
                        "error": None,
                        "response": {
                            "status_code": 200,
                            "request_id": f"req_{cid}",
                            "body": result["ok"],
                        },
                    }
                )
            else:
                failed.append(
                    {
                        "id": f"batch_req_{cid}",
                        "custom_id": cid,
                        "error": None,
                        "response": {
                            "status_code": 500,
                            "request_id": f"req_{cid}",
                            "body": {
                                "error": {
                                    "message": "The server had an error while processing your request.",
                                    "type": "server_error",
                                }
                            },
                        },
                    }
                )
        refs: list[str | None] = []
        for name, lines in (("out", ok), ("err", failed)):
            if lines:
                file_id = f"file-{batch.id}-{name}"
                random.Random(7).shuffle(lines)  # results come back in any order
                self.files[file_id] = "".join(json.dumps(x) + "\n" for x in lines).encode()
                refs.append(file_id)
            else:
                refs.append(None)
        return refs[0], refs[1]
