"""Building dead letters: the job, why it died, and everything tried, with secrets removed."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline.inbound import RecordOrigin
from pipeline.story import JobStory
from providers.redaction import redact
from schemas.errors import FrugalError
from schemas.jobs import TaskJob
from schemas.rows import DeadLetter, Row, UsageRow

MAX_ERROR_CHARS = 1000


def _now() -> datetime:
    return datetime.now(UTC)


def _message(error: BaseException, secrets: Iterable[str]) -> str:
    """The error's one line, secrets masked (a final pass after the adapters' own)."""
    return redact(str(error) or type(error).__name__, secrets)[:MAX_ERROR_CHARS]


def _peek(raw: bytes) -> dict[str, Any]:
    """Whatever id and tenant a broken record still shows, for a readable dead letter."""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        data = json.loads(raw)
        if isinstance(data, dict):
            return data
    return {}


def for_invalid_record(
    origin: RecordOrigin, raw: bytes, error: BaseException, secrets: Iterable[str] = ()
) -> DeadLetter:
    """A record that is not a valid job (or broke the worker): kept whole, as base64."""
    data = _peek(raw)
    job_id = origin.key or data.get("id")
    tenant = data.get("tenant")
    return DeadLetter(
        job_id=str(job_id) if job_id else f"{origin.topic}:{origin.partition}:{origin.offset}",
        kind=origin.kind,
        tenant=tenant if isinstance(tenant, str) else "unknown",
        error_type=error.type if isinstance(error, FrugalError) else "internal_error",
        error=_message(error, secrets),
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
    job: TaskJob,
    error: FrugalError,
    story: JobStory | None = None,
    secrets: Iterable[str] = (),
) -> DeadLetter:
    """A job that exhausted its candidates, with its whole story (parked attempts included)."""
    data = job.model_dump(mode="json", by_alias=True, exclude={"parked"})
    first = job.parked if job.parked and job.parked.source_topic else None  # before parking
    return DeadLetter(
        job_id=job.id,
        kind=job.kind,
        tenant=job.tenant,
        error_type=error.type,
        error=_message(error, secrets) + _not_tried(story),
        attempts=story.attempts if story else 0,
        providers_tried=list(story.providers_tried) if story else [],
        models_tried=list(story.models_tried) if story else [],
        failed_at=_now(),
        first_failed_at=(story.first_failed_at if story else None) or _now(),
        replay_count=job.replay_count,
        source_topic=first.source_topic if first else origin.topic,
        source_partition=first.source_partition if first else origin.partition,
        source_offset=first.source_offset if first else origin.offset,
        job=data,
    )


def _not_tried(story: JobStory | None) -> str:
    """Why adequate providers missing from `providers_tried` were not tried."""
    if story is None or not story.unusable:
        return ""
    known = ", ".join(f"{p}: {why}" for p, why in sorted(story.unusable.items()))
    return f" (not tried, known unusable: {known})"


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


def scrub(rows: Sequence[Row], secrets: Iterable[str]) -> list[Row]:
    """Rows with the error text of failed calls redacted once more before they are written."""
    keys = list(secrets)
    return [
        row.model_copy(update={"error": redact(row.error, keys)})
        if isinstance(row, UsageRow) and row.error
        else row
        for row in rows
    ]
