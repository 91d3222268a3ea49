"""Job deadlines: when a job must be answered by, and whether that leaves time for a batch."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from schemas.config import Config
from schemas.errors import JobError
from schemas.jobs import TaskJob

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_deadline(text: str, published_at: datetime) -> datetime:
    """`"48h"`-style durations count from the publish time; otherwise ISO-8601 with a zone."""
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
        return published_at + timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise JobError(
            f"deadline {text!r} is neither a duration (90s, 30m, 48h, 2d) nor an ISO-8601 time"
        ) from None
    if when.tzinfo is None:
        raise JobError(f"deadline {text!r} has no time zone")
    return when


def job_deadline(job: TaskJob, config: Config, published_at: datetime) -> datetime | None:
    """The job's own deadline, else its route's; None = as soon as possible."""
    text = job.deadline or config.route(job.kind).deadline
    return parse_deadline(text, published_at) if text else None


def seconds_left(deadline: datetime | None, now: datetime | None = None) -> float:
    """Seconds until the deadline (0 when past or absent: as soon as possible)."""
    if deadline is None:
        return 0.0
    return max(0.0, (deadline - (now or datetime.now(UTC))).total_seconds())


def is_batchable(deadline: datetime | None, config: Config) -> bool:
    """A provider batch may take the whole completion window: only if the deadline allows it."""
    return config.batch.enabled and seconds_left(deadline) >= config.batch.window_s
