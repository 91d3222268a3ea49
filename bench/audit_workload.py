"""The audit workload of issue 13: classify jobs, three tier-1 models that always answer in
the right format; the cheapest 30% wrong, the second 3x pricier and 2% wrong, the frontier 30x
pricier and never wrong. Shared by `tests/pipeline/test_audit_e2e.py` and `bench/audit_accuracy.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import tomli_w

from bench.samples import support_tickets
from schemas.config import SimConfig, SimModelConfig

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "FRUGAL_AUDIT_KEY"
KEY = "sk-audit-0123456789abcdef"
WRONG = {"cheap": 0.30, "middle": 0.02, "frontier": 0.0}
PRICE = {"cheap": 1.0, "middle": 3.0, "frontier": 30.0}  # relative; x 0.1 USD per M input
AUDITED_ROUTE = {"audit_rate": 0.05, "audit_model": "frontier", "min_accuracy": 0.95}


def sim_config() -> SimConfig:
    models = {name: SimModelConfig(wrong_rate=rate) for name, rate in WRONG.items()}
    return SimConfig(api_key=KEY, models=models)


def models(only: str | None = None) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "provider": "sim",
            "model": name,
            "tier": 1,
            "capabilities": ["json_schema"],
            "input_per_mtok": 0.1 * relative,
            "output_per_mtok": 0.4 * relative,
        }
        for name, relative in PRICE.items()
        if only in (None, name)
    ]


def write_config(
    path: Path,
    *,
    prefix: str,
    data_dir: Path,
    sim_url: str,
    route: dict[str, Any],
    only: str | None = None,
) -> Path:
    config = {
        "kafka": {"topic_prefix": prefix, "group_id": f"{prefix}-workers", "partitions": 2},
        "storage": {"data_dir": str(data_dir), "flush_interval_s": 0.2},
        "worker": {"status_interval_s": 5.0},
        "providers": [
            {
                "name": "sim",
                "kind": "openai",
                "base_url": f"{sim_url}/v1",
                "api_key_env": KEY_ENV,
                "max_concurrency": 64,
                "timeout_s": 10,
            }
        ],
        "models": models(only),
        "routes": {"classify": {"min_tier": 1, **route}},
        "report": {"frontier_model": "frontier"},
    }
    path.write_text(tomli_w.dumps(config))
    return path


def jobs(n: int, tag: str) -> list[dict[str, Any]]:
    """Support tickets whose text names the right label (`metadata.expected`)."""
    return support_tickets(n, seed=13, prefix=tag)


def frugal(args: list[str], bootstrap: str, stdin: str | None = None) -> None:
    env = {**os.environ, "FRUGAL_KAFKA_BOOTSTRAP": bootstrap, KEY_ENV: KEY}
    done = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"frugal {args[0]} failed: {done.stderr[-2000:]}")


@dataclass(frozen=True)
class Outcome:
    jobs: int
    answered: int
    right: int
    bill_usd: float
    audit_usd: float
    frontier_alone_usd: float  # each job's answer tokens priced on the frontier model
    calls: dict[str, int]  # answer calls per model
    audits: int

    @property
    def accuracy(self) -> float:
        return self.right / self.jobs

    @property
    def bill_ratio(self) -> float:
        return self.bill_usd / self.frontier_alone_usd

    def line(self) -> str:
        return (
            f"{self.answered}/{self.jobs} answered, {self.accuracy:.1%} right, bill "
            f"${self.bill_usd:.6f} = {self.bill_ratio:.3f}x frontier alone "
            f"(${self.frontier_alone_usd:.6f}); audits {self.audits} "
            f"(${self.audit_usd:.6f}); answer calls {self.calls}"
        )


def run(config: Path, bootstrap: str, batch: list[dict[str, Any]], data_dir: Path) -> Outcome:
    stdin = "".join(json.dumps(j) + "\n" for j in batch)
    frugal(["publish", "--config", str(config), "-"], bootstrap, stdin)
    frugal(["worker", "--config", str(config), "--drain"], bootstrap)
    return measure(data_dir, batch)


def measure(data_dir: Path, batch: list[dict[str, Any]]) -> Outcome:
    """Right answers against the jobs' expected labels, and the bill, read off the lake."""
    lake = data_dir / "lake"
    con = duckdb.connect()
    for table in ("results", "usage"):
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
            f"'{lake}/{table}/*/*/*.parquet', hive_partitioning=true, union_by_name=true)"
        )
    ids = [j["id"] for j in batch]
    con.execute("CREATE TABLE batch (job_id VARCHAR)")
    con.executemany("INSERT INTO batch VALUES (?)", [(i,) for i in ids])
    outputs = dict(
        con.execute(
            "SELECT job_id, output FROM results WHERE job_id IN (SELECT * FROM batch)"
        ).fetchall()
    )
    right = sum(
        json.loads(outputs[j["id"]]).get("label") == j["metadata"]["expected"]["label"]
        for j in batch
        if j["id"] in outputs
    )
    where = "job_id IN (SELECT * FROM batch)"
    bill, audit_usd, audits = con.execute(
        f"""SELECT sum(cost_usd), coalesce(sum(cost_usd) FILTER (WHERE purpose = 'audit'), 0),
                   count(*) FILTER (WHERE purpose = 'audit') FROM usage WHERE {where}"""
    ).fetchone() or (0.0, 0.0, 0)
    tokens_in, tokens_out = con.execute(
        f"""SELECT sum(input_tokens), sum(output_tokens) FROM usage
            WHERE {where} AND outcome = 'ok' AND coalesce(purpose, 'answer') = 'answer'"""
    ).fetchone() or (0, 0)
    calls = dict(
        con.execute(
            f"""SELECT model, count(*) FROM usage
                WHERE {where} AND coalesce(purpose, 'answer') = 'answer' GROUP BY model"""
        ).fetchall()
    )
    con.close()
    frontier = PRICE["frontier"] * (0.1 * tokens_in + 0.4 * tokens_out) / 1e6
    return Outcome(
        len(batch), len(outputs), right, float(bill), float(audit_usd), frontier,
        {str(k): int(v) for k, v in calls.items()}, int(audits),
    )  # fmt: skip
