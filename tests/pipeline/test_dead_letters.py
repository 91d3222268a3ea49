"""Dead letters: the whole story of a failed job or record, secrets removed; replay records."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from support.frugal_testkit import SIM_KEY

from cli.replay import replay_record
from pipeline.dead_letters import RecordOrigin, for_invalid_record, for_job, scrub
from pipeline.story import JobStory
from schemas.errors import AuthError, JobError
from schemas.jobs import ParkedState, parse_job
from schemas.rows import UsageRow

ORIGIN = RecordOrigin("classify", "p.classify", 3, 99, None)
JOB = {"id": "j-1", "tenant": "acme", "input": "hi", "labels": ["a", "b"]}


def usage_row(error: str) -> UsageRow:
    return UsageRow(
        job_id="j-1",
        attempt=1,
        kind="classify",
        tenant="acme",
        provider="openai",
        model="m",
        input_tokens=1,
        output_tokens=0,
        cached_input_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        cost_usd=0.0,
        latency_ms=1.0,
        outcome="auth",
        ts=datetime.now(UTC),
        worker="w",
        error=error,
    )


def test_an_invalid_record_keeps_its_raw_bytes_and_where_it_came_from() -> None:
    raw = b"\x00\xffnot json at all"
    letter = for_invalid_record(ORIGIN, raw, JobError("record is not JSON: boom"))
    assert letter.error_type == "invalid_job"
    assert base64.b64decode(letter.raw or "") == raw
    assert letter.job_id == "p.classify:3:99"  # no key, no id: named by its position
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "p.classify",
        3,
        99,
    )
    assert letter.attempts == 0 and letter.job is None


def test_an_invalid_record_is_named_by_the_id_it_still_shows() -> None:
    raw = json.dumps({"id": "j-9", "tenant": "acme", "labels": []}).encode()
    letter = for_invalid_record(ORIGIN, raw, JobError("invalid job: labels: too short"))
    assert (letter.job_id, letter.tenant) == ("j-9", "acme")


def test_a_bug_becomes_an_internal_error_dead_letter() -> None:
    letter = for_invalid_record(ORIGIN, b"{}", KeyError("oops"))
    assert letter.error_type == "internal_error"
    assert "oops" in letter.error


def test_secrets_are_removed_from_every_message() -> None:
    leaky = f"HTTP 401 for key {SIM_KEY}; header Authorization: Bearer {SIM_KEY}"
    job = parse_job({**JOB, "kind": "classify"})
    letter = for_job(ORIGIN, job, AuthError(leaky), None, [SIM_KEY])
    invalid = for_invalid_record(ORIGIN, b"x", JobError(leaky), [SIM_KEY])
    (row,) = scrub([usage_row(leaky)], [SIM_KEY])
    for text in (letter.error, invalid.error, row.error):  # type: ignore[attr-defined]
        assert SIM_KEY not in text
        assert "401" in text


def test_a_dead_job_carries_its_story_and_its_first_origin() -> None:
    first = datetime(2026, 1, 1, tzinfo=UTC)
    parked = ParkedState(
        not_before=0,
        attempts=4,
        providers_tried=["openai", "gemini"],
        models_tried=["a", "b"],
        first_failed_at=first,
        source_topic="p.classify",
        source_partition=1,
        source_offset=5,
    )
    job = parse_job({**JOB, "kind": "classify", "replay_count": 2, "parked": parked.model_dump()})
    story = JobStory.resume(job, first)
    letter = for_job(RecordOrigin("classify", "p.retry", 0, 8, "j-1"), job, AuthError("no"), story)
    assert letter.attempts == 4
    assert letter.providers_tried == ["openai", "gemini"]
    assert letter.models_tried == ["a", "b"]
    assert letter.first_failed_at == first
    assert letter.replay_count == 2
    assert (letter.source_topic, letter.source_offset) == ("p.classify", 5)
    assert letter.job is not None and "parked" not in letter.job
    assert letter.job["labels"] == ["a", "b"]


def test_a_replay_counts_itself_and_avoids_the_providers_that_failed() -> None:
    job = {**JOB, "kind": "classify", "avoid_providers": ["anthropic"], "parked": {"not_before": 1}}
    letter = {"job": json.dumps(job), "replay_count": 1, "providers_tried": ["openai", "gemini"]}
    replayed = json.loads(replay_record(letter, ["openai"]) or b"")
    assert replayed["replay_count"] == 2
    assert replayed["avoid_providers"] == ["anthropic", "gemini", "openai"]
    assert replayed["exclude_providers"] == ["openai"]
    assert "parked" not in replayed
    assert parse_job(replayed).id == "j-1"


def test_a_record_that_never_was_a_job_cannot_be_replayed() -> None:
    assert replay_record({"job": None, "replay_count": 0}, []) is None
