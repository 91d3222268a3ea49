"""What making each answer durable as it finishes costs, per record: the local journal Frugal
uses (append + fsync, one fsync per group of records that finish together) against producing
the rows to Kafka with acks=all (the alternative the issue names).

    python -m bench.durability [--records N] [--runs R] [--kafka host:port]

Prints medians of R runs; with --kafka also a real Kafka (the embedded Tansu is always run).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bus.broker import EmbeddedBroker
from bus.producer import Producer
from schemas.config import StorageConfig
from schemas.rows import ResultRow, Row, UsageRow
from sinks.journal import Journal, encode_rows

CONCURRENCY = (1, 8, 64)  # records finishing at once (a worker's calls on the wire)


def record_rows(i: int) -> list[Row]:
    now = datetime.now(UTC)
    common: dict[str, Any] = {
        "job_id": f"job-{i}",
        "kind": "classify",
        "tenant": "acme",
        "provider": "openai",
    }
    return [
        UsageRow(**common, attempt=1, model="gpt-4o-mini", input_tokens=120, output_tokens=4,
                 cached_input_tokens=0, cache_write_tokens=0, reasoning_tokens=0,
                 cost_usd=2.1e-5, latency_ms=90.0, outcome="ok", ts=now, worker="bench"),
        ResultRow(**common, doc_id=None, output='{"label": "billing"}', model="gpt-4o-mini",
                  attempts=1, input_tokens=120, output_tokens=4, cost_usd=2.1e-5,
                  latency_ms=95.0, created_at=now, completed_at=now),
    ]  # fmt: skip


async def per_record_us(durable: Callable[[list[Row]], Awaitable[None]], n: int, c: int) -> float:
    """Microseconds of wall time per record, `c` records made durable concurrently."""
    rows = [record_rows(i) for i in range(n)]
    sem = asyncio.Semaphore(c)

    async def one(r: list[Row]) -> None:
        async with sem:
            await durable(r)

    started = time.perf_counter()
    await asyncio.gather(*(one(r) for r in rows))
    return (time.perf_counter() - started) / n * 1e6


async def journal_case(n: int, c: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(StorageConfig(data_dir=Path(tmp)).journal_dir, "bench")
        journal.open()

        async def durable(rows: list[Row]) -> None:
            done = asyncio.get_running_loop().create_future()
            journal.append(rows, lambda: done.set_result(None))
            await done

        try:
            return await per_record_us(durable, n, c)
        finally:
            journal.close()


async def kafka_case(bootstrap: str, n: int, c: int) -> float:
    async with Producer(bootstrap) as producer:
        topic = f"bench-durability-{time.time_ns()}"
        await producer.send(topic, None, b"warm-up")  # topic creation out of the timing

        async def durable(rows: list[Row]) -> None:
            await producer.send(topic, rows[0].job_id, encode_rows(rows))  # type: ignore[attr-defined]

        return await per_record_us(durable, n, c)


def median_of(runs: int, case: Callable[[], Coroutine[Any, Any, float]]) -> float:
    return statistics.median(asyncio.run(case()) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.durability", description=__doc__)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kafka", help="bootstrap of a real Kafka (topics auto-created)")
    args = parser.parse_args()
    n, runs = args.records, args.runs
    print(f"per-record cost of durability, us (median of {runs} runs of {n} records)")
    print(f"{'records at once':>16} {'journal':>10} {'tansu acks=all':>15} {'kafka acks=all':>15}")
    with EmbeddedBroker() as tansu:
        for c in CONCURRENCY:
            journal = median_of(runs, lambda: journal_case(n, c))  # noqa: B023
            embedded = median_of(runs, lambda: kafka_case(tansu.bootstrap, n, c))  # noqa: B023
            kafka = (
                f"{median_of(runs, lambda: kafka_case(args.kafka, n, c)):15.0f}"  # noqa: B023
                if args.kafka
                else f"{'-':>15}"
            )
            print(f"{c:>16} {journal:10.0f} {embedded:15.0f} {kafka}")


if __name__ == "__main__":
    main()
