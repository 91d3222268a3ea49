"""Rows of the three tables (results, usage, dead_letters) as written to Parquet."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field


class Row(BaseModel):
    # The journal writes rows with model_dump_json: a NaN or infinite float reads back as one.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    table: ClassVar[str]
    arrow_schema: ClassVar[pa.Schema]

    kind: str

    def as_record(self) -> dict[str, Any]:
        return self.model_dump()


class ResultRow(Row):
    table = "results"
    job_id: str
    kind: str
    tenant: str
    doc_id: str | None
    output: str  # JSON text
    provider: str
    model: str
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float  # all attempts of the job
    latency_ms: float
    created_at: datetime
    completed_at: datetime
    escalations: int = 0  # models tried before the one that answered
    route_reason: str = ""
    worker: str = ""
    user: str | None = None
    agent: str | None = None
    session: str | None = None
    page: int | None = None  # the (first) PDF page the answered chunk comes from

    arrow_schema = pa.schema(
        [
            ("job_id", pa.string()),
            ("kind", pa.string()),
            ("tenant", pa.string()),
            ("doc_id", pa.string()),
            ("output", pa.string()),
            ("provider", pa.string()),
            ("model", pa.string()),
            ("attempts", pa.int32()),
            ("input_tokens", pa.int64()),
            ("output_tokens", pa.int64()),
            ("cost_usd", pa.float64()),
            ("latency_ms", pa.float64()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("completed_at", pa.timestamp("us", tz="UTC")),
            ("escalations", pa.int32()),
            ("route_reason", pa.string()),
            ("worker", pa.string()),
            ("user", pa.string()),
            ("agent", pa.string()),
            ("session", pa.string()),
            ("page", pa.int32()),
        ]
    )


class UsageRow(Row):
    table = "usage"
    job_id: str
    attempt: int
    kind: str
    tenant: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    latency_ms: float
    outcome: str  # ok | invalid_output | <error type>
    ts: datetime
    worker: str
    usage_estimated: bool = False
    route_reason: str = ""  # why this model was picked at this point
    estimated_cost_usd: float = 0.0
    error: str = ""
    user: str | None = None
    agent: str | None = None
    session: str | None = None
    purpose: str = "answer"  # answer | audit (a re-ask of `audit_of`'s answer by the audit model)
    audit_of: str = ""  # audit calls: the model whose answer was checked
    agreed: bool | None = None  # audit calls: whether both answers matched (None: no verdict)
    mode: str = "sync"  # sync | batch (a provider batch API, at the batch price)
    batch_id: str | None = None

    arrow_schema = pa.schema(
        [
            ("job_id", pa.string()),
            ("attempt", pa.int32()),
            ("kind", pa.string()),
            ("tenant", pa.string()),
            ("provider", pa.string()),
            ("model", pa.string()),
            ("input_tokens", pa.int64()),
            ("output_tokens", pa.int64()),
            ("cached_input_tokens", pa.int64()),
            ("cache_write_tokens", pa.int64()),
            ("reasoning_tokens", pa.int64()),
            ("cost_usd", pa.float64()),
            ("latency_ms", pa.float64()),
            ("outcome", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("worker", pa.string()),
            ("usage_estimated", pa.bool_()),
            ("route_reason", pa.string()),
            ("estimated_cost_usd", pa.float64()),
            ("error", pa.string()),
            ("user", pa.string()),
            ("agent", pa.string()),
            ("session", pa.string()),
            ("purpose", pa.string()),
            ("audit_of", pa.string()),
            ("agreed", pa.bool_()),
            ("mode", pa.string()),
            ("batch_id", pa.string()),
        ]
    )


class DeadLetter(Row):
    """A job that could not be done, with its full story; also the DLQ record body."""

    table = "dead_letters"
    job_id: str
    kind: str
    tenant: str
    error_type: str
    error: str  # last error message, secrets removed
    attempts: int
    providers_tried: list[str] = Field(default_factory=list)
    models_tried: list[str] = Field(default_factory=list)
    failed_at: datetime
    first_failed_at: datetime | None = None
    replay_count: int = 0
    source_topic: str = ""
    source_partition: int = -1
    source_offset: int = -1
    job: dict[str, Any] | None = None  # the original job, when it parsed
    raw: str | None = None  # the original bytes (base64) when it did not
    # `dead` rows mark a job dead; `resolved` rows (written when a replay succeeds) clear it.
    status: str = "dead"

    arrow_schema = pa.schema(
        [
            ("job_id", pa.string()),
            ("kind", pa.string()),
            ("tenant", pa.string()),
            ("error_type", pa.string()),
            ("error", pa.string()),
            ("attempts", pa.int32()),
            ("providers_tried", pa.list_(pa.string())),
            ("models_tried", pa.list_(pa.string())),
            ("failed_at", pa.timestamp("us", tz="UTC")),
            ("first_failed_at", pa.timestamp("us", tz="UTC")),
            ("replay_count", pa.int32()),
            ("source_topic", pa.string()),
            ("source_partition", pa.int32()),
            ("source_offset", pa.int64()),
            ("job", pa.string()),
            ("raw", pa.string()),
            ("status", pa.string()),
        ]
    )

    def as_record(self) -> dict[str, Any]:
        import json

        record = self.model_dump()
        record["job"] = json.dumps(self.job) if self.job is not None else None
        return record


TABLE_ROWS: dict[str, type[Row]] = {cls.table: cls for cls in (ResultRow, UsageRow, DeadLetter)}
