"""Memory under a backlog: one worker faces N records on Kafka and a slow provider; RSS stays flat.

The worker holds `max_in_flight` records; once they all wait on the provider it pauses its
partitions, so the backlog stays in Kafka. Peak RSS should not depend on the backlog's size.

    python -m bench.backlog_memory 10000 [100000 ...]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import tomli_w

from bench.harness import REPO, bench_env
from bench.workload import BENCH_KEY, jobs, write_worker_config
from bus.broker import EmbeddedBroker, free_port, wait_for_port
from bus.producer import Producer
from bus.topics import ensure_topics, job_topic
from schemas.config import KafkaConfig

SLOW = {"latency_ms": 250.0, "rpm": 1200}  # ~20 answers a second: far behind any backlog
RUN_S = 40.0  # how long the worker faces the backlog
SAMPLE_S = 0.5
_READ_AHEAD = re.compile(r"read-not-committed=(\d+)")


def _rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return kib / 1024


async def _publish(bootstrap: str, kafka: KafkaConfig, n: int) -> float:
    """Publish `n` jobs as fast as the broker takes them; seconds it took."""
    await ensure_topics(bootstrap, kafka)
    started = time.monotonic()
    batch = 5000
    async with Producer(bootstrap) as producer:
        for at in range(0, n, batch):
            chunk = jobs(min(batch, n - at), f"m{at}")
            by_kind: dict[str, list[tuple[str | None, bytes]]] = {}
            for job in chunk:
                by_kind.setdefault(job["kind"], []).append((job["id"], json.dumps(job).encode()))
            for kind, records in by_kind.items():
                await producer.send_many(job_topic(kafka, kind), records)
    return time.monotonic() - started


def _slow_sim(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = workdir / "sim.toml"
    config.write_text(tomli_w.dumps({"sim": {**SLOW, "api_key": BENCH_KEY}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "sim", "--port", str(port), "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=bench_env(),
        cwd=REPO,
    )
    wait_for_port(port, timeout_s=30, proc=proc)  # type: ignore[arg-type]
    return proc, f"http://127.0.0.1:{port}"


def _answered(data_dir: Path) -> int:
    pattern = data_dir / "lake" / "results" / "*" / "*" / "*.parquet"
    con = duckdb.connect()
    try:
        row = con.execute(
            "SELECT count(DISTINCT job_id) FROM read_parquet(?, union_by_name = true)"
            " WHERE kind <> '_seed'",
            [str(pattern)],
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _watch(proc: subprocess.Popen[bytes], seconds: float) -> list[tuple[float, float]]:
    """(seconds since start, RSS MB) every SAMPLE_S until `seconds` pass or the worker exits."""
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    while time.monotonic() - started < seconds and proc.poll() is None:
        rss = _rss_mb(proc.pid)
        if rss is not None:
            samples.append((time.monotonic() - started, rss))
        time.sleep(SAMPLE_S)
    return samples


def run(backlog: int, run_s: float = RUN_S) -> dict[str, Any]:
    """Face a worker with `backlog` records and a slow provider for `run_s` seconds."""
    with tempfile.TemporaryDirectory(prefix="frugal-mem-") as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        prefix = f"mem{backlog}"
        sim, sim_url = _slow_sim(workdir)
        try:
            config = write_worker_config(
                workdir / "frugal.toml",
                prefix=prefix,
                data_dir=workdir / "data",
                sim_url=sim_url,
                knobs={"worker": {"status_interval_s": 2.0}},
            )
            kafka = KafkaConfig(topic_prefix=prefix, group_id=f"{prefix}-workers")
            publish_s = asyncio.run(_publish(broker.bootstrap, kafka, backlog))
            log_path = workdir / "worker.log"
            with log_path.open("wb") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "cli", "worker", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=bench_env(broker.bootstrap),
                    cwd=REPO,
                )
                samples = _watch(worker, run_s)
                log.flush()
                before_stop = log_path.read_text(errors="replace")  # shutdown skips the rest
                worker.send_signal(signal.SIGTERM)
                _, status, usage = os.wait4(worker.pid, 0)
            read_ahead = [int(m) for m in _READ_AHEAD.findall(before_stop)]
            steady = [rss for t, rss in samples if t >= run_s / 2]
            return {
                "backlog": backlog,
                "publish_s": round(publish_s, 1),
                "run_s": run_s,
                "records_processed": _answered(workdir / "data"),
                "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                "rss_mb_at_quarter": round(_at(samples, run_s / 4), 1),
                "rss_mb_at_end": round(samples[-1][1], 1) if samples else None,
                "rss_mb_second_half_spread": round(max(steady) - min(steady), 1)
                if steady
                else None,
                "max_read_not_committed": max(read_ahead, default=None),
                "intake_pauses": before_stop.count("intake paused"),
                "exit_code": os.waitstatus_to_exitcode(status),
            }
        finally:
            sim.terminate()
            sim.wait(timeout=10)


def _at(samples: list[tuple[float, float]], moment: float) -> float:
    return next((rss for t, rss in samples if t >= moment), samples[-1][1] if samples else 0.0)


def main(argv: list[str]) -> int:
    for backlog in [int(a) for a in argv] or [10_000, 100_000]:
        print(json.dumps(run(backlog)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
