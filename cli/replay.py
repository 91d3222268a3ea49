"""`frugal dlq list` and `frugal dlq replay`: look at dead letters and send them back."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from bus.broker import running_broker
from bus.producer import Producer
from bus.topics import ensure_topics, job_topic
from schemas.config import Config
from sinks.catalog import query
from sinks.formatting import render


@dataclass(frozen=True)
class ReplayFilter:
    kind: str | None = None
    error_type: str | None = None
    exclude_providers: list[str] | None = None
    limit: int | None = None


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _filtered_sql(select: str, wanted: ReplayFilter, tail: str = "") -> str:
    clauses = []
    if wanted.kind:
        clauses.append(f"kind = {_quote(wanted.kind)}")
    if wanted.error_type:
        clauses.append(f"error_type = {_quote(wanted.error_type)}")
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return f"{select} FROM dead_letters{where} {tail}"


def list_dead_letters(config: Config, kind: str | None) -> int:
    sql = _filtered_sql(
        "SELECT kind, error_type, count(*) AS dead_letters",
        ReplayFilter(kind),
        "GROUP BY ALL ORDER BY 3 DESC",
    )
    print(render(query(config.storage, sql), "table"))
    return 0


def replay_record(letter: dict[str, Any], extra_exclude: list[str]) -> bytes | None:
    """The job to republish: one more replay, avoiding the providers that failed it."""
    if not letter.get("job"):
        return None
    job = json.loads(letter["job"]) if isinstance(letter["job"], str) else dict(letter["job"])
    job.pop("parked", None)  # a replay starts afresh (its earlier attempts stay in `usage`)
    job["replay_count"] = int(letter.get("replay_count") or 0) + 1
    avoid = set(job.get("avoid_providers") or []) | set(letter.get("providers_tried") or [])
    job["avoid_providers"] = sorted(avoid)
    job["exclude_providers"] = sorted(set(job.get("exclude_providers") or []) | set(extra_exclude))
    return json.dumps(job).encode()


def _letters(config: Config, wanted: ReplayFilter) -> list[dict[str, Any]]:
    tail = "ORDER BY failed_at" + (f" LIMIT {int(wanted.limit)}" if wanted.limit else "")
    result = query(
        config.storage,
        _filtered_sql(
            "SELECT job_id, kind, error_type, providers_tried, replay_count, job", wanted, tail
        ),
    )
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


async def _publish(config: Config, bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    await ensure_topics(bootstrap, config.kafka)
    async with Producer(bootstrap) as producer:
        for kind, key, value in records:
            await producer.send(job_topic(config.kafka, kind), key, value)


def replay(config: Config, wanted: ReplayFilter, dry_run: bool) -> int:
    console = Console(stderr=True)
    letters = _letters(config, wanted)
    records: list[tuple[str, str, bytes]] = []
    unreplayable = 0
    for letter in letters:
        value = replay_record(letter, wanted.exclude_providers or [])
        if value is None:
            unreplayable += 1
            continue
        records.append((letter["kind"], letter["job_id"], value))
    if unreplayable:
        console.print(f"{unreplayable} dead letters hold no valid job (invalid_job): not replayed")
    if dry_run:
        for kind, key, _ in records:
            print(f"would replay {kind} {key}")
        print(f"would replay {len(records)} dead letters")
        return 0
    if records:
        with running_broker(config.kafka.bootstrap) as bootstrap:
            asyncio.run(_publish(config, bootstrap, records))
    print(f"replayed {len(records)} dead letters")
    return 0
