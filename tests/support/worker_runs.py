"""What the many-worker scenarios (rebalance, scale-out, crash, shutdown) share: one config
over a simulator speaking all three protocols, and the check that every job was answered once,
correctly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import duckdb

from bench.samples import support_tickets
from support.frugal_testkit import (
    default_models,
    jsonl,
    kafka_settings,
    lake_query,
    run_frugal,
    sim_providers,
    worker_id,
    write_config,
)


def one_sim_config(
    path: Path,
    *,
    prefix: str,
    data_dir: Path,
    sim_base: str,
    broker: object,
    partitions: int | None = None,
    provider_limits: dict[str, Any] | None = None,
    **sections: Any,
) -> Path:
    """A config whose three providers (one per protocol) all point at one simulator."""
    urls = {"openai": sim_base, "anthropic": sim_base, "gemini": sim_base}
    kafka = kafka_settings(broker) | ({"partitions": partitions} if partitions else {})
    return write_config(
        path,
        prefix=prefix,
        data_dir=data_dir,
        providers=sim_providers(urls, **(provider_limits or {})),
        models=default_models(),
        kafka=kafka,
        **sections,
    )


def assert_each_job_answered_once(data_dir: Path, jobs: list[dict[str, Any]]) -> None:
    """One result per job (none twice, none missing), each the answer the job expects."""
    rows = lake_query(data_dir, "SELECT job_id, output FROM results_all")
    assert len(rows) == len(jobs)  # no job answered twice
    outputs = {job_id: json.loads(output) for job_id, output in rows}
    for job in jobs:
        assert outputs[job["id"]] == job["metadata"]["expected"], job["id"]


def results_by_worker(data_dir: Path) -> dict[str, int]:
    """Results written so far per `worker` (none before a worker has created the lake)."""
    try:
        return dict(lake_query(data_dir, "SELECT worker, count(*) FROM results_all GROUP BY 1"))
    except duckdb.IOException:
        return {}


def answered_by(data_dir: Path, worker: subprocess.Popen[bytes]) -> int:
    return results_by_worker(data_dir).get(worker_id(worker), 0)


def result_count(data_dir: Path) -> int:
    return sum(results_by_worker(data_dir).values())


def publish_stuck_and_followers(
    config: Path, bootstrap: str, followers: int
) -> list[dict[str, Any]]:
    """A job `stuck` bound to openai (the failing provider in these tests), then `followers`
    jobs bound to gemini, in that order on one partition; the followers' jobs."""
    tickets = support_tickets(followers + 1)
    stuck = {**tickets[0], "id": "stuck", "providers": ["openai"]}
    behind = [{**t, "providers": ["gemini"]} for t in tickets[1:]]
    published = run_frugal(
        ["publish", "--config", str(config), "-"],
        bootstrap=bootstrap,
        stdin=jsonl([stuck, *behind]),
    )
    assert published.returncode == 0, published.stderr
    return behind
