"""Building dead letters: the job, why it died, and everything tried, with secrets removed."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.runner import JobStory
from schemas.errors import FrugalError
from schemas.jobs import TaskJob
from schemas.rows import DeadLetter


@dataclass(frozen=True)
class RecordOrigin:
    """Where a record came from, kept on its dead letter."""

    kind: str
    topic: str
    partition: int
    offset: int
    key: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def for_invalid_record(origin: RecordOrigin, raw: bytes, error: FrugalError) -> DeadLetter:
    job_id = origin.key or f"{origin.topic}:{origin.partition}:{origin.offset}"
    return DeadLetter(
        job_id=job_id,
        kind=origin.kind,
        tenant="unknown",
        error_type=error.type,
        error=str(error)[:1000],
        attempts=0,
        failed_at=_now(),
        first_failed_at=_now(),
        source_topic=origin.topic,
        source_partition=origin.partition,
        source_offset=origin.offset,
        raw=base64.b64encode(raw).decode(),
    )


def for_job(
    origin: RecordOrigin,
    job: TaskJob | dict[str, Any],
    error: FrugalError,
    story: JobStory | None = None,
) -> DeadLetter:
    data = job if isinstance(job, dict) else job.model_dump(mode="json", by_alias=True)
    return DeadLetter(
        job_id=str(data.get("id")),
        kind=origin.kind,
        tenant=str(data.get("tenant", "default")),
        error_type=error.type,
        error=str(error)[:1000],
        attempts=story.attempts if story else 0,
        providers_tried=list(story.providers_tried) if story else [],
        models_tried=list(story.models_tried) if story else [],
        failed_at=_now(),
        first_failed_at=(story.first_failed_at if story else None) or _now(),
        replay_count=int(data.get("replay_count", 0)),
        source_topic=origin.topic,
        source_partition=origin.partition,
        source_offset=origin.offset,
        job=data,
    )


def resolved(job: TaskJob) -> DeadLetter:
    """A marker row: a replayed job succeeded, so it is no longer dead."""
    return DeadLetter(
        job_id=job.id,
        kind=job.kind,
        tenant=job.tenant,
        error_type="",
        error="",
        attempts=0,
        failed_at=_now(),
        replay_count=job.replay_count,
        status="resolved",
    )
