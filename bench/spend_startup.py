"""Start-up with a long spend log: a worker answers its first record within seconds, at any history.

Writes N spend events (holds and their settlements under a `total` cap) to the spend log, lets
one ledger replay them once as the workers that wrote them would have (it snapshots the book as
it goes), then starts a worker with one job waiting and times its first answer. Without the
snapshots, that start-up would include the full replay, timed here as `full_replay_s`.

    python -m bench.spend_startup 10000 1000000 [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import duckdb
import tomli_w
from aiokafka import AIOKafkaProducer

from bench.harness import REPO, bench_env
from bench.workload import BENCH_KEY, jobs, write_worker_config
from bus.broker import EmbeddedBroker
from bus.producer import Producer
from bus.topics import ensure_topics, job_topic, spend_topic
from pipeline.spend import SpendEvent, SpendLedger
from providers.sim import SimThread
from schemas.config import KafkaConfig, SimConfig

KEY = "global:*:total@total"
CAP_USD = 1e9


async def write_history(bootstrap: str, topic: str, n: int) -> float:
    """n events, produced in batches; seconds it took."""
    started = time.monotonic()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=50, max_batch_size=1 << 20
    )
    await producer.start()
    try:
        now, pending = time.time(), []
        for i in range(n):
            rid = f"history:{i // 2}"
            event = (
                SpendEvent("reserve", rid, (KEY,), 1e-4, now, (CAP_USD,))
                if i % 2 == 0
                else SpendEvent("settle", rid, (KEY,), 4e-5, now)
            )
            pending.append(await producer.send(topic, event.to_bytes(), partition=0))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def replay_once(bootstrap: str, topic: str, n: int) -> float:
    """What the workers that wrote the history did as they went: replay it (and snapshot)."""
    ledger = SpendLedger(bootstrap, topic, "history")
    started = time.monotonic()
    await ledger.start()
    try:
        while ledger.events_read < n:
            await asyncio.sleep(0.05)
        return time.monotonic() - started
    finally:
        await ledger.stop()


async def publish_one(bootstrap: str, kafka: KafkaConfig) -> None:
    job = jobs(1, "first")[0]
    async with Producer(bootstrap) as producer:
        await producer.send_many(
            job_topic(kafka, job["kind"]), [(job["id"], json.dumps(job).encode())]
        )


def first_answer_s(config: Path, bootstrap: str, data_dir: Path, log: Path) -> float:
    """Seconds from starting a worker to its first result row on disk (its log: FRUGAL_BENCH_LOG)."""
    log = Path(os.environ.get("FRUGAL_BENCH_LOG", log))
    pattern = str(data_dir / "lake" / "results" / "*" / "*" / "*.parquet")
    started = time.monotonic()
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, env=bench_env(bootstrap), cwd=REPO,
        )  # fmt: skip
        try:
            while time.monotonic() - started < 300:
                if list(data_dir.glob("lake/results/*/*/*.parquet")):
                    con = duckdb.connect()
                    (count,) = con.execute(
                        "SELECT count(*) FROM read_parquet(?)", [pattern]
                    ).fetchone() or (0,)
                    con.close()
                    if count:
                        return time.monotonic() - started
                time.sleep(0.05)
            raise RuntimeError(f"no answer within 300 s; see {log}")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)


def run(n: int, bootstrap: str, workdir: Path, sim_url: str, session_s: float) -> dict[str, Any]:
    prefix = f"spend{n}-{int(time.time())}"
    config = write_worker_config(
        workdir / f"{prefix}.toml",
        prefix=prefix,
        data_dir=workdir / prefix,
        sim_url=sim_url,
        knobs={
            "kafka": {"bootstrap": bootstrap, "session_timeout_s": session_s},
            "storage": {"flush_interval_s": 0.1},
        },
    )
    data = tomllib.loads(config.read_text())
    data["budgets"] = [{"scope": "global", "window": "total", "limit_usd": CAP_USD}]
    config.write_text(tomli_w.dumps(data))
    kafka = KafkaConfig(topic_prefix=prefix, group_id=f"{prefix}-workers")
    asyncio.run(ensure_topics(bootstrap, kafka))
    produce_s = asyncio.run(write_history(bootstrap, spend_topic(kafka), n))
    replay_s = asyncio.run(replay_once(bootstrap, spend_topic(kafka), n))
    asyncio.run(publish_one(bootstrap, kafka))
    answer_s = first_answer_s(config, bootstrap, workdir / prefix, workdir / f"{prefix}.log")
    return {
        "spend_events": n,
        "produce_s": round(produce_s, 1),
        "full_replay_s": round(replay_s, 2),
        "first_answer_s": round(answer_s, 2),
    }


def main(argv: list[str]) -> int:
    bootstrap = ""
    if "--bootstrap" in argv:
        at = argv.index("--bootstrap")
        bootstrap = argv[at + 1]
        del argv[at : at + 2]
    sizes = [int(a) for a in argv] or [10_000, 1_000_000]
    with (
        tempfile.TemporaryDirectory(prefix="frugal-spend-") as tmp,
        SimThread(SimConfig(api_key=BENCH_KEY)) as sim,
    ):
        if bootstrap:
            for n in sizes:
                print(json.dumps(run(n, bootstrap, Path(tmp), sim.base_url, 6)), flush=True)
            return 0
        with EmbeddedBroker() as broker:
            for n in sizes:
                print(json.dumps(run(n, broker.bootstrap, Path(tmp), sim.base_url, 2)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
