"""The rows that tell a job's story: one usage row per call, and the result row of its answer."""

from __future__ import annotations

import json
import time

from pipeline.routing import Candidate
from pipeline.story import JobStory, utcnow
from schemas.completion import Usage
from schemas.rows import ResultRow, UsageRow


def usage_row(
    story: JobStory,
    candidate: Candidate,
    usage: Usage,
    outcome: str,
    cost: float,
    latency_ms: float,
    error: str,
    worker_id: str,
) -> UsageRow:
    """One call of the job, billed at `cost`, as the next attempt of its story."""
    job = story.job
    return UsageRow(
        job_id=job.id,
        attempt=story.attempts + 1,
        kind=job.kind,
        tenant=job.tenant,
        provider=candidate.provider,
        model=candidate.model.name,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost,
        latency_ms=latency_ms,
        outcome=outcome,
        ts=utcnow(),
        worker=worker_id,
        usage_estimated=usage.estimated,
        route_reason=candidate.reason,
        estimated_cost_usd=candidate.estimated_cost_usd,
        error=error[:500],
        user=job.user,
        agent=job.agent,
        session=job.session,
        purpose=candidate.purpose,
        audit_of=candidate.audit_of,
    )


def result_row(
    story: JobStory, candidate: Candidate, output: dict[str, object], worker_id: str
) -> ResultRow:
    """The job's answer from `candidate`, with the totals of every call of its story."""
    job = story.job
    input_tokens, output_tokens = story.tokens()
    return ResultRow(
        job_id=job.id,
        kind=job.kind,
        tenant=job.tenant,
        doc_id=job.doc_id,
        page=job.page,
        output=json.dumps(output, ensure_ascii=False),
        provider=candidate.provider,
        model=candidate.model.name,
        attempts=story.attempts,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=story.cost_usd,
        latency_ms=(time.monotonic() - story.started) * 1000,
        created_at=story.created_at,
        completed_at=utcnow(),
        escalations=len(story.models_tried) - 1,
        route_reason=candidate.reason,
        worker=worker_id,
        user=job.user,
        agent=job.agent,
        session=job.session,
    )


def with_costs(row: ResultRow, story: JobStory) -> ResultRow:
    """The result row billed for every call of the job, its audit included."""
    input_tokens, output_tokens = story.tokens()
    return row.model_copy(
        update={
            "attempts": story.attempts,
            "cost_usd": story.cost_usd,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
    )
