"""Factories of valid table rows for the sink tests; keyword arguments override any field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.rows import DeadLetter, ResultRow, UsageRow

DataFiles = Callable[..., list[Path]]  # the `data_files` fixture

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Rows:
    """Valid rows with sensible defaults; keyword arguments override any field."""

    t0 = T0

    def result(self, job_id: str = "job-1", at: timedelta = timedelta(0), **kw: Any) -> ResultRow:
        fields: dict[str, Any] = {
            "job_id": job_id,
            "kind": "classify",
            "tenant": "acme",
            "doc_id": None,
            "output": '{"label": "bug"}',
            "provider": "openai",
            "model": "gpt-4o-mini",
            "attempts": 1,
            "input_tokens": 100,
            "output_tokens": 5,
            "cost_usd": 0.0001,
            "latency_ms": 12.5,
            "created_at": T0,
            "completed_at": T0 + at,
        }
        return ResultRow(**(fields | kw))

    def usage(self, job_id: str = "job-1", attempt: int = 1, **kw: Any) -> UsageRow:
        fields: dict[str, Any] = {
            "job_id": job_id,
            "attempt": attempt,
            "kind": "classify",
            "tenant": "acme",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_tokens": 100,
            "output_tokens": 5,
            "cached_input_tokens": 0,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "cost_usd": 0.0001,
            "latency_ms": 12.5,
            "outcome": "ok",
            "ts": T0,
            "worker": "w1",
        }
        return UsageRow(**(fields | kw))

    def dead(self, job_id: str = "job-1", at: timedelta = timedelta(0), **kw: Any) -> DeadLetter:
        fields: dict[str, Any] = {
            "job_id": job_id,
            "kind": "classify",
            "tenant": "acme",
            "error_type": "server_error",
            "error": "HTTP 500",
            "attempts": 3,
            "providers_tried": ["openai"],
            "failed_at": T0 + at,
            "job": {"id": job_id, "kind": "classify"},
        }
        return DeadLetter(**(fields | kw))
