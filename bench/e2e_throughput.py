"""End-to-end throughput: publish N jobs, then time one `frugal worker --drain` process."""

from __future__ import annotations

import sys
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from bench.harness import Measured, Sim, bench_env, measure
from bench.workload import jobs, write_jsonl, write_worker_config


class BenchFailed(RuntimeError):
    """A benchmark run did not do the work it was timed on."""


@dataclass
class WorkerRun:
    """One drained backlog. Rates are records per second; CPU is the worker's user+sys."""

    records: int
    publish_s: float
    wall_s: float  # whole `worker --drain` command: start-up, group join, work, flush, exit
    join_s: float  # command start -> first record answered (start-up + group join)
    first_to_exit_s: float  # first record answered -> drain complete and process exited
    steady_s: float  # first -> last record answered (the usage rows' timestamps)
    cpu_s: float  # whole process
    steady_cpu_s: float  # CPU spent inside the steady window
    peak_rss_mb: float
    sim_cpu_share: float  # of one core, by the simulator in the steady window (1.0 = saturated)

    @property
    def rate_wall(self) -> float:
        return self.records / self.wall_s

    @property
    def rate_end_to_end(self) -> float:
        return self.records / self.first_to_exit_s

    @property
    def rate_steady(self) -> float:
        return (self.records - 1) / self.steady_s

    @property
    def cpu_ms_per_record(self) -> float:
        return self.steady_cpu_s * 1000 / max(1, self.records - 1)

    @property
    def cpu_ms_per_record_total(self) -> float:
        return self.cpu_s * 1000 / self.records

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rate_wall": self.rate_wall,
            "rate_end_to_end": self.rate_end_to_end,
            "rate_steady": self.rate_steady,
            "cpu_ms_per_record": self.cpu_ms_per_record,
            "cpu_ms_per_record_total": self.cpu_ms_per_record_total,
        }


def _frugal(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def _answer_window(data_dir: Path) -> tuple[int, float, float]:
    """(results, first answer, last answer) in epoch seconds, read straight from the lake."""
    lake = data_dir / "lake"
    con = duckdb.connect()
    results = con.execute(
        f"SELECT count(DISTINCT job_id) FROM read_parquet('{lake}/results/*/*/*.parquet')"
        " WHERE kind <> '_seed'"
    ).fetchone()
    window = con.execute(
        f"SELECT epoch(min(ts)), epoch(max(ts)) FROM read_parquet('{lake}/usage/*/*/*.parquet')"
        " WHERE outcome = 'ok'"
    ).fetchone()
    assert results is not None and window is not None
    return int(results[0]), float(window[0]), float(window[1])


def run_once(
    bootstrap: str,
    sim: Sim,
    n: int,
    workdir: Path,
    knobs: dict[str, dict[str, Any]],
    processes: int = 1,
) -> WorkerRun:
    """Publish `n` jobs to fresh topics, then drain them with one `frugal worker --drain`
    command (of `processes` worker processes: CPU is theirs together, peak RSS the largest)."""
    tag = f"bench{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    config = write_worker_config(
        workdir / "frugal.toml", prefix=tag, data_dir=data_dir, sim_url=sim.url, knobs=knobs
    )
    env = bench_env(bootstrap)
    backlog = write_jsonl(workdir / "jobs.jsonl", jobs(n, tag))
    published = measure(
        _frugal("publish", "--config", str(config), "-"),
        env=env,
        log=workdir / "publish.log",
        stdin=backlog,
    )
    _check(published, workdir / "publish.log", "publish")
    worker = measure(
        _frugal("worker", "--config", str(config), "--drain", "--processes", str(processes)),
        env=env,
        log=workdir / "worker.log",
        watch=sim.pid,
    )
    _check(worker, workdir / "worker.log", "worker --drain")
    done, first, last = _answer_window(data_dir)
    if done != n:
        raise BenchFailed(f"worker answered {done} of {n} jobs; see {workdir / 'worker.log'}")
    return _worker_run(n, published, worker, first, last)


def _worker_run(
    n: int, published: Measured, worker: Measured, first: float, last: float
) -> WorkerRun:
    return WorkerRun(
        records=n,
        publish_s=published.wall_s,
        wall_s=worker.wall_s,
        join_s=first - worker.started,
        first_to_exit_s=worker.ended - first,
        steady_s=last - first,
        cpu_s=worker.cpu_s,
        steady_cpu_s=worker.cpu_at(last) - worker.cpu_at(first),
        peak_rss_mb=worker.peak_rss_mb,
        sim_cpu_share=worker.watched_cpu_between(first, last) / max(last - first, 1e-9),
    )


def _check(run: Measured, log: Path, what: str) -> None:
    if run.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchFailed(f"{what} exited {run.returncode}:\n{tail}")
