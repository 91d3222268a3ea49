"""The demo's deadline-tolerant run: the bundled support tickets once more, with a 48 h
deadline, through the simulated providers' batch APIs; then what the same jobs cost each way."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from cli.publish import OutboundRecord, PublishSummary, publish
from schemas.config import BatchConfig, Config
from sinks.catalog import query

DEADLINE_PREFIX = "deadline-"
DEMO_BATCH = BatchConfig(window_s=3600, max_wait_s=0.3, poll_interval_s=0.2)  # seconds, not hours


def with_batches(config: Config) -> Config:
    """The simulated providers offer batch APIs; the simulator ends a batch in half a second."""
    for provider in config.providers:
        provider.batch = True
    config.batch = DEMO_BATCH
    return config


def deadline_copies(samples: Path) -> list[OutboundRecord]:
    records = []
    for line in samples.read_text().splitlines():
        if line.strip():
            job = json.loads(line)
            job["id"] = DEADLINE_PREFIX + job["id"]
            job["deadline"] = "48h"
            records.append(OutboundRecord(job["kind"], job["id"], json.dumps(job).encode()))
    return records


async def publish_deadline_run(config: Config, bootstrap: str, samples: Path) -> int:
    summary = PublishSummary()
    records = deadline_copies(samples)
    await publish(config, bootstrap, records, summary, show_progress=False)
    return len(records)


def print_saving(config: Config, console: Console) -> None:
    row = query(
        config.storage,
        f"""SELECT sum(cost_usd) FILTER (WHERE job_id LIKE '{DEADLINE_PREFIX}%'),
                  sum(cost_usd) FILTER (WHERE job_id IN (
                      SELECT substr(job_id, {len(DEADLINE_PREFIX) + 1}) FROM usage
                      WHERE job_id LIKE '{DEADLINE_PREFIX}%')),
                  count(*) FILTER (WHERE job_id LIKE '{DEADLINE_PREFIX}%' AND mode = 'batch')
           FROM usage""",
    ).rows[0]
    batch, sync, calls = (float(row[0] or 0), float(row[1] or 0), int(row[2] or 0))
    if sync:
        console.print(
            f"[bold]Deadline run[/bold]: the support tickets with deadline 48h cost "
            f"${batch:.6f} ({calls} calls in provider batches) instead of ${sync:.6f}: "
            f"{batch / sync:.0%} of the synchronous bill."
        )
