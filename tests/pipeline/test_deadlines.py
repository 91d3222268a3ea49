"""Deadlines: durations from the publish time, ISO-8601 times, and what leaves time for a batch."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.batching import custom_id_for, submission_key
from pipeline.deadlines import is_batchable, job_deadline, parse_deadline
from schemas.config import BatchConfig, Config, RouteConfig
from schemas.errors import JobError
from schemas.jobs import parse_job

PUBLISHED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "after"),
    [("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)),
     ("48h", timedelta(hours=48)), ("2d", timedelta(days=2))],
)  # fmt: skip
def test_a_duration_counts_from_the_publish_time(text: str, after: timedelta) -> None:
    assert parse_deadline(text, PUBLISHED) == PUBLISHED + after


def test_an_iso_time_with_a_zone_is_taken_as_is() -> None:
    assert parse_deadline("2026-01-03T00:00:00Z", PUBLISHED) == datetime(2026, 1, 3, tzinfo=UTC)


@pytest.mark.parametrize("text", ["next tuesday", "2026-01-03T00:00:00", "-5h", "48 hours"])
def test_a_deadline_that_does_not_parse_is_an_invalid_job(text: str) -> None:
    with pytest.raises(JobError, match="deadline"):
        parse_deadline(text, PUBLISHED)


def test_the_route_default_applies_to_jobs_without_their_own() -> None:
    config = Config(routes={"classify": RouteConfig(deadline="48h")})
    job = parse_job({"id": "a", "kind": "classify", "labels": ["x"]})
    assert job_deadline(job, config, PUBLISHED) == PUBLISHED + timedelta(hours=48)
    own = parse_job({"id": "b", "kind": "classify", "labels": ["x"], "deadline": "1h"})
    assert job_deadline(own, config, PUBLISHED) == PUBLISHED + timedelta(hours=1)


def test_only_a_deadline_at_least_a_window_away_is_batchable() -> None:
    config = Config(batch=BatchConfig(window_s=3600))
    now = datetime.now(UTC)
    assert is_batchable(now + timedelta(hours=2), config)
    assert not is_batchable(now + timedelta(minutes=30), config)
    assert not is_batchable(now - timedelta(hours=1), config)  # past: as soon as possible
    assert not is_batchable(None, config)
    off = Config(batch=BatchConfig(enabled=False, window_s=3600))
    assert not is_batchable(now + timedelta(hours=2), off)


def test_any_job_id_maps_to_a_custom_id_every_provider_accepts() -> None:
    ids = ["t-1", "ünïcødé/ü 😀", "x" * 512, "a:b@c#d"]
    custom = [custom_id_for(submission_key(parse_job({"id": i, "kind": "generate"}))) for i in ids]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", c) for c in custom)
    assert len(set(custom)) == len(ids)
