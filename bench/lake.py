"""The lake over a long run: a day of one worker's flushes, then a report query and a worker's
start-up before and after compaction, and the write cost per flush of each way to write.

    python -m bench.lake [--flushes N] [--jobs-per-flush J] [--runs R] [--out FILE]

Medians of R runs. A shared machine makes every figure noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.harness import REPO
from cli.report import SECTIONS
from pipeline.done import DoneJobs
from pipeline.validity import outcomes_from_lake
from schemas.config import StorageConfig
from schemas.rows import ResultRow, Row, UsageRow
from sinks import lakehouse
from sinks.catalog import ensure_catalog, query
from sinks.compaction import compact
from sinks.parquet import ParquetSink

RESULTS = REPO / "bench" / "results" / "lake.json"
DAY = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = ("classify", "extract")
REPORT_QUERY = SECTIONS["Spend by model"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.lake", description=__doc__)
    parser.add_argument("--flushes", type=int, default=86_400, help="flushes in the day (1/s)")
    parser.add_argument("--jobs-per-flush", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="repeats of each timing (median)")
    parser.add_argument("--write-samples", type=int, default=300, help="flushes per write bench")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def flush_rows(n: int, flushes: int, jobs: int) -> list[Row]:
    at = DAY + timedelta(seconds=n * 86_400 / flushes)
    rows: list[Row] = []
    for i in range(jobs):
        job, kind = f"job-{n}-{i}", KINDS[(n + i) % 2]
        common: dict[str, Any] = {
            "job_id": job,
            "kind": kind,
            "tenant": "acme",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_tokens": 120,
            "output_tokens": 6,
            "cost_usd": 0.00002,
            "latency_ms": 300.0,
        }
        rows.append(
            ResultRow(
                **common,
                doc_id=None,
                output='{"label": "bug"}',
                attempts=1,
                created_at=at,
                completed_at=at,
                user=f"u{i}",
                agent="triage",
            )
        )
        rows.append(
            UsageRow(
                **common,
                attempt=1,
                cached_input_tokens=0,
                cache_write_tokens=0,
                reasoning_tokens=0,
                outcome="ok",
                ts=at,
                worker="w1",
                user=f"u{i}",
                agent="triage",
            )
        )
    return rows


async def write_day(storage: StorageConfig, flushes: int, jobs: int) -> list[float]:
    """Every flush through the worker's own sink; returns seconds per flush."""
    sink = ParquetSink(storage, "bench")
    times = []
    for n in range(flushes):
        sink.add(flush_rows(n, flushes, jobs))
        started = time.perf_counter()
        await sink.flush()
        times.append(time.perf_counter() - started)
    return times


def ducklake_insert_per_flush(storage: StorageConfig, samples: int, jobs: int) -> list[float]:
    """The alternative design: every flush a DuckLake transaction (no flush files)."""
    con = lakehouse.open_lake(storage)
    times = []
    try:
        for n in range(samples):
            rows = flush_rows(n, samples, jobs)
            tables = {
                t: pa.Table.from_pylist(
                    [r.as_record() for r in rows if r.table == t],
                    schema=type(next(r for r in rows if r.table == t)).arrow_schema,
                )
                for t in ("results", "usage")
            }
            started = time.perf_counter()
            con.execute("BEGIN TRANSACTION")
            for table, data in tables.items():
                con.register("batch", data)
                con.execute(f"INSERT INTO lake.{table}_log BY NAME SELECT * FROM batch")
                con.unregister("batch")
            con.execute("COMMIT")
            times.append(time.perf_counter() - started)
    finally:
        con.close()
    return times


def delta_append_per_flush(root: Path, samples: int, jobs: int) -> list[float] | None:
    """Delta Lake (delta-rs), when installed: one append commit per table and flush."""
    try:
        from deltalake import write_deltalake
    except ImportError:
        return None
    times = []
    for n in range(samples):
        rows = flush_rows(n, samples, jobs)
        started = time.perf_counter()
        for table in ("results", "usage"):
            mine = [r for r in rows if r.table == table]
            data = pa.Table.from_pylist(
                [r.as_record() for r in mine], schema=type(mine[0]).arrow_schema
            )
            write_deltalake(str(root / table), data, mode="append", partition_by=["kind"])
        times.append(time.perf_counter() - started)
    return times


def timed(runs: int, action: Callable[[], Any]) -> tuple[float, float]:
    """Median wall and CPU seconds (this process, DuckDB's threads included): on a shared
    machine the CPU time is the steadier figure."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return round(statistics.median(wall), 4), round(statistics.median(cpu), 4)


def worker_start_up(storage: StorageConfig) -> None:
    """What `Pipeline.start` reads from the lake: catalog, done job ids, model outcomes."""
    ensure_catalog(storage)
    asyncio.run(DoneJobs(storage).refresh())
    outcomes_from_lake(storage)


def lake_shape(storage: StorageConfig) -> dict[str, int]:
    flush_files = [p for p in storage.lake_dir.rglob("*.parquet") if p.name != "seed.parquet"]
    compacted = list((storage.data_dir / "compacted").rglob("*.parquet"))
    per_dir: dict[Path, int] = {}
    for path in [*flush_files, *compacted]:
        per_dir[path.parent] = per_dir.get(path.parent, 0) + 1
    return {
        "flush_files": len(flush_files),
        "lake_files": len(compacted),
        "max_files_per_partition": max(per_dir.values(), default=0),
    }


def measure(storage: StorageConfig, runs: int) -> dict[str, Any]:
    actions: dict[str, Callable[[], Any]] = {
        "report_query": lambda: query(storage, REPORT_QUERY),
        "count_results": lambda: query(storage, "SELECT count(*) FROM results"),
        "worker_start_up": lambda: worker_start_up(storage),
    }
    figures: dict[str, Any] = lake_shape(storage)
    for name, action in actions.items():
        figures[f"{name}_s"], figures[f"{name}_cpu_s"] = timed(runs, action)
    return figures


def ms(values: Sequence[float] | None) -> float | None:
    return round(statistics.median(values) * 1000, 3) if values else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="frugal-lake-bench-") as tmp:
        root = Path(tmp)
        storage = StorageConfig(data_dir=root / "day", flush_interval_s=1.0)
        ensure_catalog(storage)
        started = time.perf_counter()
        flush_times = asyncio.run(write_day(storage, args.flushes, args.jobs_per_flush))
        write_s = time.perf_counter() - started
        before = measure(storage, args.runs)
        compaction = compact(storage, min_age_s=0.0, grace_s=0.0)
        after = measure(storage, args.runs)
        writes = {
            "plain_flush_files_ms": ms(flush_times),
            "ducklake_insert_ms": ms(
                ducklake_insert_per_flush(
                    StorageConfig(data_dir=root / "ducklake"),
                    args.write_samples,
                    args.jobs_per_flush,
                )
            ),
            "delta_append_ms": ms(
                delta_append_per_flush(root / "delta", args.write_samples, args.jobs_per_flush)
            ),
            "compaction_ms_per_flush": round(compaction.seconds * 1000 / args.flushes, 3),
        }
    result = {
        "load_average_at_start_and_end": [load_at_start, os.getloadavg()[0]],
        "flushes": args.flushes,
        "jobs_per_flush": args.jobs_per_flush,
        "write_day_s": round(write_s, 1),
        "compaction_s": round(compaction.seconds, 2),
        "before": before,
        "after": after,
        "write_cost_per_flush": writes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
