"""Simulated batch APIs: OpenAI Batch (Files + /batches), Anthropic Message Batches and Gemini
batch mode, with a configurable completion delay, per-request failures, expiry and a queue limit.

Requests are answered (and billed, into their own bill) when the batch completes, by the same
code that answers synchronous calls.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from providers.sim.state import SimStats
from providers.sim.wire import LimitView, Reply

if TYPE_CHECKING:
    from providers.sim.server import SimServer

_OPENAI = re.compile(
    r"(?P<acct>.*?)/v1/(?:(?P<files>files)|batches)(?:/(?P<id>[^/]+))?(?P<tail>/cancel|/content)?"
)
_ANTHROPIC = re.compile(
    r"(?P<acct>.*?)/v1/messages/batches(?:/(?P<id>[^/]+))?(?P<tail>/cancel|/results)?"
)
_GEMINI_CREATE = re.compile(
    r"(?P<acct>.*?)/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):batchGenerateContent"
)
_GEMINI_BATCH = re.compile(
    r"(?P<acct>.*?)/v1(?:beta|alpha)/(?P<id>batches/[^/:]+)(?P<tail>:cancel)?"
)
_VIEW = LimitView(limit=10_000, remaining=10_000, reset_s=0.0)


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z") if epoch else None


@dataclass
class SimBatch:
    id: str
    protocol: str
    model: str
    items: list[tuple[str, dict[str, Any]]]  # (custom id, request body)
    created: float = field(default_factory=time.time)
    status: str = "in_progress"  # in_progress | ended | canceled | expired
    ended: float | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # custom id -> outcome

    @property
    def open(self) -> bool:
        return self.status == "in_progress"


class SimBatches:
    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.stats = SimStats()  # what batched requests were billed, apart from sync calls
        self.batches: dict[str, SimBatch] = {}
        self.files: dict[str, bytes] = {}
        self.created = 0
        self.refused = 0
        self.submitted: Counter[str] = Counter()  # request fingerprint -> times submitted
        self._faults = random.Random(1)

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.stats.snapshot(),
            "batches_created": self.created,
            "batches_refused": self.refused,
            "requests_submitted": sum(self.submitted.values()),
            "duplicate_requests": sum(n - 1 for n in self.submitted.values() if n > 1),
        }

    async def handle(self, request: web.Request) -> web.Response | None:
        """The answer to a batch API request, or None when the path is not one."""
        path, post = request.path, request.method == "POST"
        if m := _ANTHROPIC.fullmatch(path):
            return await self._anthropic(request, m, post)
        if post and (m := _GEMINI_CREATE.fullmatch(path)):
            return await self._gemini_create(request, m.group("model"))
        if m := _GEMINI_BATCH.fullmatch(path):
            return self._gemini_state(m.group("id"), cancel=bool(m.group("tail")))
        if m := _OPENAI.fullmatch(path):
            return await self._openai(request, m, post)
        return None

    # --- shared -------------------------------------------------------------------------

    def _refused(self) -> bool:
        limit = self.server.config.batch.max_open
        if limit is not None and sum(b.open for b in self.batches.values()) >= limit:
            self.refused += 1
            return True
        return False

    def _new(self, protocol: str, model: str, items: list[tuple[str, dict[str, Any]]]) -> SimBatch:
        self.created += 1
        prefix = {"openai": "batch_", "anthropic": "msgbatch_", "gemini": "batches/"}[protocol]
        batch = SimBatch(
            f"{prefix}{self.server._session}{self.created:06d}", protocol, model, items
        )
        self.batches[batch.id] = batch
        for custom_id, _ in items:  # the same custom id twice = the same request resubmitted
            self.submitted[f"{model}/{custom_id}"] += 1
        return batch

    def _advance(self, batch: SimBatch) -> None:
        """Complete (or expire) the batch once its delay has passed."""
        config = self.server.config.batch
        if not batch.open or time.time() < batch.created + config.completion_delay_s:
            return
        batch.ended = time.time()
        if config.expire:
            batch.status = "expired"
            return
        wire = self.server._wires[batch.protocol]
        for cid, body in batch.items:
            if self._faults.random() < config.fail_rate:
                batch.results[cid] = {"error": 500}
                continue
            req = wire.parse(body, batch.model if batch.protocol == "gemini" else None)
            self.stats.requests += 1
            self.stats.model(req.model).calls += 1
            reply: Reply = self.server._reply(wire, req, _VIEW, f"req_{cid}", self.stats)
            self.stats.ok += 1
            batch.results[cid] = {"ok": reply.body}
        batch.status = "ended"

    def _cancel(self, batch: SimBatch) -> None:
        if batch.open:
            batch.status, batch.ended = "canceled", time.time()

    def _find(self, batch_id: str) -> SimBatch | None:
        batch = self.batches.get(batch_id)
        if batch is not None:
            self._advance(batch)
        return batch

    @staticmethod
    def _missing(batch_id: str) -> web.Response:
        return web.json_response({"error": {"message": f"no batch {batch_id}"}}, status=404)

    # --- OpenAI ---------------------------------------------------------------------------

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

    # --- Anthropic ------------------------------------------------------------------------

    async def _anthropic(self, request: web.Request, m: re.Match[str], post: bool) -> web.Response:
        if post and not m.group("id"):
            body = await request.json()
            if self._refused():
                return web.json_response(
                    {
                        "type": "error",
                        "error": {
                            "type": "rate_limit_error",
                            "message": "Too many batches in progress.",
                        },
                    },
                    status=429,
                    headers={"retry-after": "1"},
                )
            requests = body.get("requests") or []
            for r in requests:
                if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", str(r.get("custom_id"))):
                    return web.json_response(
                        {
                            "type": "error",
                            "error": {
                                "type": "invalid_request_error",
                                "message": "requests.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
                            },
                        },
                        status=400,
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
            "created_at": _iso(batch.created),
            "ended_at": _iso(batch.ended),
            "expires_at": _iso(batch.created + 86400),
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

    # --- Gemini ---------------------------------------------------------------------------

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
            "createTime": _iso(batch.created),
            "endTime": _iso(batch.ended),
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
