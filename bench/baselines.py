"""Running the baseline scripts (plain httpx glue, LiteLLM Router) on the worker's exact calls."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness import REPO, Measured, bench_env, measure
from bench.workload import BENCH_KEY, jobs
from pipeline.prompts import build_request, output_allowance
from schemas.jobs import ClassifyJob, parse_job

LITELLM_PYTHON = REPO / ".venv-litellm" / "bin" / "python"
CONCURRENCY = 64


@dataclass
class BaselineRun:
    """One baseline script, start to exit. Rates are records per second."""

    name: str
    records: int
    invalid: int
    failed: int
    wall_s: float  # whole command, imports included
    first_to_done_s: float  # first answer -> Parquet written
    steady_s: float  # first -> last answer
    cpu_s: float
    steady_cpu_s: float
    peak_rss_mb: float

    @property
    def rate_end_to_end(self) -> float:
        return self.records / self.first_to_done_s

    @property
    def rate_steady(self) -> float:
        return (self.records - 1) / self.steady_s

    @property
    def rate_wall(self) -> float:
        return self.records / self.wall_s

    @property
    def cpu_ms_per_record(self) -> float:
        return self.steady_cpu_s * 1000 / max(1, self.records - 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rate_end_to_end": self.rate_end_to_end,
            "rate_steady": self.rate_steady,
            "rate_wall": self.rate_wall,
            "cpu_ms_per_record": self.cpu_ms_per_record,
        }


def write_calls(path: Path, n: int, tag: str) -> Path:
    """The worker's own requests for `n` jobs (its prompts, schemas and output limits)."""
    lines = []
    for raw in jobs(n, tag):
        job = parse_job(raw, raw["kind"])
        request = build_request(job, output_allowance(job))
        lines.append(
            json.dumps(
                {
                    "id": job.id,
                    "kind": job.kind,
                    "system": request.system,
                    "prompt": request.prompt,
                    "schema": request.output_schema,
                    "schema_name": request.schema_name,
                    "labels": job.labels if isinstance(job, ClassifyJob) else None,
                    "max_tokens": request.max_output_tokens,
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def litellm_available() -> bool:
    return (LITELLM_PYTHON.parents[1] / ".installed").exists()


def run_baseline(name: str, sim_url: str, calls: Path, workdir: Path) -> BaselineRun:
    """Run `bench.baseline_<name>` (litellm in its own venv) and measure it."""
    python = str(LITELLM_PYTHON) if name == "litellm" else sys.executable
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    args = [
        python,
        "-m",
        f"bench.baseline_{name}",
        "--calls",
        str(calls),
        "--base-url",
        f"{sim_url}/v1",
        "--api-key",
        BENCH_KEY,
        "--out",
        str(workdir / name),
        "--concurrency",
        str(CONCURRENCY),
    ]
    run = measure(args, env=bench_env(), log=log)
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("{")]
    if run.returncode != 0 or not lines:
        raise RuntimeError(f"baseline {name} failed ({run.returncode}); see {log}")
    return _baseline_run(name, run, json.loads(lines[-1]))


def _baseline_run(name: str, run: Measured, out: dict[str, Any]) -> BaselineRun:
    first, last = out["first_answer"], out["last_answer"]
    return BaselineRun(
        name=name,
        records=out["records"],
        invalid=out["invalid"],
        failed=out["failed"],
        wall_s=run.wall_s,
        first_to_done_s=out["done"] - first,
        steady_s=last - first,
        cpu_s=run.cpu_s,
        steady_cpu_s=run.cpu_at(last) - run.cpu_at(first),
        peak_rss_mb=run.peak_rss_mb,
    )
