"""Many machines, one lake: workers with their own local disks share an S3 lake and a
PostgreSQL catalog; a third process sees every result exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    jsonl,
    publish_raw,
    run_frugal,
    sim_providers,
    start_frugal,
    wait_for,
    write_config,
)
from support.lake_servers import (
    S3_SECRET,
    Postgres,
    S3Server,
    moto_s3,
    postgres_bin_dir,
    postgres_server,
)

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import Config, SimConfig

JOBS = 150

pytestmark = pytest.mark.skipif(
    postgres_bin_dir() is None,
    reason="PostgreSQL server binaries are not installed (Debian package postgresql; "
    "`make test` installs it where apt-get works)",
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, Postgres]]:
    root = tmp_path_factory.mktemp("shared-lake-servers")
    with moto_s3(root / "moto.log") as s3, postgres_server() as pg:
        yield s3, pg


def machine_config(
    tmp: Path, name: str, s3: S3Server, pg: Postgres, sim_url: str, prefix: str
) -> Path:
    """One machine's config: its own local disk, the shared bucket and catalog."""
    return write_config(
        tmp / f"{name}.toml",
        prefix=prefix,
        data_dir=tmp / "unused",
        providers=sim_providers({"openai": sim_url, "anthropic": sim_url, "gemini": sim_url}),
        models=default_models(),
        kafka={"partitions": 4},
        storage={
            "data_dir": f"s3://{s3.bucket}/{prefix}",
            "local_dir": str(tmp / name),
            "s3_endpoint": s3.endpoint,
            "catalog": pg.catalog(),
            "compact_interval_s": 0.5,
            "compact_after_s": 0,
            "compact_grace_s": 1,
        },
    )


def sql(config: Path, bootstrap: str, query: str) -> list[dict[str, Any]]:
    done = run_frugal(
        ["sql", "--config", str(config), "--format", "json", query], bootstrap=bootstrap
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def test_two_workers_on_an_s3_lake_and_a_third_process_sees_every_result_once(
    broker: EmbeddedBroker,
    servers: tuple[S3Server, Postgres],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3, pg = servers
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    jobs = support_tickets(JOBS)
    with SimThread(SimConfig(api_key=SIM_KEY, latency_ms=5)) as sim:
        configs = [
            machine_config(tmp_path, n, s3, pg, sim.base_url, "shared")
            for n in ("machine-a", "machine-b", "reader")
        ]
        # Both workers start on a brand-new catalog at once: the lake is created exactly once.
        workers = [
            start_frugal(
                ["worker", "--config", str(c)],
                bootstrap=broker.bootstrap,
                log=tmp_path / f"w{i}.log",
            )
            for i, c in enumerate(configs[:2])
        ]
        try:
            published = run_frugal(
                ["publish", "--config", str(configs[0]), "-"],
                bootstrap=broker.bootstrap,
                stdin=jsonl(jobs),
            )
            assert published.returncode == 0, published.stderr
            config = Config.model_validate(tomllib.loads(configs[0].read_text()))
            asyncio.run(publish_raw(broker.bootstrap, config.kafka.topic("classify"), [b"nope"]))
            count = (
                "SELECT (SELECT count(*) FROM results) + (SELECT count(*) FROM dead_letters) AS n"
            )
            wait_for(
                lambda: sql(configs[2], broker.bootstrap, count)[0]["n"] >= JOBS + 1,
                timeout=90,
                what="the reader to see every result in the shared lake",
            )
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            exits = [worker.wait(timeout=60) for worker in workers]

    assert exits == [0, 0]
    seen = sql(configs[2], broker.bootstrap, "SELECT job_id, worker FROM results")
    assert sorted(r["job_id"] for r in seen) == sorted(j["id"] for j in jobs)
    assert len({r["worker"] for r in seen}) == 2, "both machines answered"
    daily = sql(configs[2], broker.bootstrap, "SELECT sum(calls) AS n FROM usage_daily")
    usage = sql(configs[2], broker.bootstrap, "SELECT count(*) AS n FROM usage")
    assert daily[0]["n"] == usage[0]["n"] >= JOBS
    logs = "".join((tmp_path / f"w{i}.log").read_text(errors="replace") for i in range(2))
    dead = sql(configs[2], broker.bootstrap, "SELECT * FROM dead_letters")
    assert [d["error_type"] for d in dead] == ["invalid_job"]
    tables = [sql(configs[2], broker.bootstrap, f"SELECT * FROM {t}") for t in ("results", "usage")]
    everything = json.dumps([*tables, dead], default=str)
    assert S3_SECRET not in logs and S3_SECRET not in everything
