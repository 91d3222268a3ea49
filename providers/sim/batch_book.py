"""The simulator's book of provider batches: their state, completion, expiry and bill.

Each protocol's routes (`batch_openai`, `batch_anthropic`, `batch_gemini`) speak their wire
format over this book; `providers.sim.batch` puts them together.
"""

from __future__ import annotations

import random
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

_VIEW = LimitView(limit=10_000, remaining=10_000, reset_s=0.0)


def iso(epoch: float | None) -> str | None:
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


class BatchBook:
    """Every batch the simulator holds, across the three protocols."""

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
