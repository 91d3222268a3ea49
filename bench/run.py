"""`make bench`: end-to-end throughput of one worker process, CPU per record, peak memory, and
baselines measured in the same run; medians of several runs, a table, and JSON.

    python -m bench.run [--records N] [--runs R] [--baseline-records M] [--no-litellm]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import first_answer
from bench.baselines import BaselineRun, litellm_available, run_baseline, write_calls
from bench.e2e_throughput import WorkerRun, run_once
from bench.harness import REPO, simulator
from bench.report import print_report
from bus.broker import EmbeddedBroker

RESULTS = REPO / "bench" / "results" / "latest.json"
MEMORY_BACKLOG = 50_000
# Worker tuning on top of bench/workload.py's config; empty = the defaults users get.
WORKER_KNOBS: dict[str, dict[str, Any]] = {}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__)
    parser.add_argument("--records", type=int, default=20_000, help="jobs per worker run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (median reported)")
    parser.add_argument(
        "--warmup-records", type=int, default=2_000, help="one uncounted worker run first (0: none)"
    )
    parser.add_argument("--baseline-records", type=int, default=3_000, help="jobs per baseline run")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM baseline")
    parser.add_argument("--no-glue", action="store_true", help="skip the httpx glue baseline")
    parser.add_argument("--no-memory", action="store_true", help="skip the backlog memory bench")
    parser.add_argument("--memory-backlog", type=int, default=MEMORY_BACKLOG)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--kafka-kit",
        type=Path,
        default=Path(os.environ["FRUGAL_TEST_KAFKA_KIT"])
        if os.environ.get("FRUGAL_TEST_KAFKA_KIT")
        else None,
        help="Kafka kit folder (../shared/kafka): first answer on real Kafka too",
    )
    parser.add_argument(
        "--first-answer-runs", type=int, default=3, help="small drains per broker (0: none)"
    )
    parser.add_argument("--first-answer-records", type=int, default=200)
    parser.add_argument(
        "--processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="also time `worker --drain --processes N` (default: one a core; 1: skip)",
    )
    return parser.parse_args(argv)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def summarize(runs: Sequence[Any], fields: Sequence[str]) -> dict[str, float]:
    return {f: median([getattr(r, f) for r in runs]) for f in fields}


WORKER_FIELDS = (
    "rate_end_to_end",
    "rate_steady",
    "rate_wall",
    "cpu_ms_per_record",
    "cpu_ms_per_record_total",
    "peak_rss_mb",
    "wall_s",
    "join_s",
    "first_to_exit_s",
    "steady_s",
    "publish_s",
    "sim_cpu_share",
)
BASELINE_FIELDS = (
    "rate_end_to_end",
    "rate_steady",
    "rate_wall",
    "cpu_ms_per_record",
    "peak_rss_mb",
    "wall_s",
)


def run_rounds(
    args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Interleave worker and baseline runs so drifting machine load hits them alike."""
    baselines = [] if args.no_glue else ["glue"]
    if not args.no_litellm:
        if litellm_available():
            baselines.append("litellm")
        else:
            log("LiteLLM baseline skipped: .venv-litellm is missing (make bench creates it)")
    worker_runs: list[WorkerRun] = []
    multi_runs: list[WorkerRun] = []
    first: dict[str, Any] = {}
    baseline_runs: dict[str, list[BaselineRun]] = {name: [] for name in baselines}
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker, simulator(workdir) as sim:
        calls = write_calls(workdir / "calls.jsonl", args.baseline_records, "base")
        if args.warmup_records:  # broker, simulator and page cache warm; not counted
            run_once(broker.bootstrap, sim, args.warmup_records, workdir / "warmup", WORKER_KNOBS)
        for i in range(args.runs):
            run = run_once(
                broker.bootstrap, sim, args.records, workdir / f"worker-{i}", WORKER_KNOBS
            )
            log(
                f"run {i + 1}/{args.runs}: worker {run.rate_end_to_end:,.0f} rec/s end to end, "
                f"{run.rate_steady:,.0f} steady, {run.cpu_ms_per_record:.3f} ms CPU/rec, "
                f"{run.peak_rss_mb:.0f} MB"
            )
            worker_runs.append(run)
            if args.processes > 1:
                multi = run_once(
                    broker.bootstrap, sim, args.records, workdir / f"multi-{i}", WORKER_KNOBS,
                    processes=args.processes,
                )  # fmt: skip
                log(
                    f"run {i + 1}/{args.runs}: worker --processes {args.processes} "
                    f"{multi.rate_wall:,.0f} rec/s whole command, "
                    f"{multi.rate_end_to_end:,.0f} end to end, {multi.rate_steady:,.0f} steady"
                )
                multi_runs.append(multi)
            for name in baselines:
                base = run_baseline(name, sim.url, calls, workdir / f"{name}-{i}")
                log(
                    f"run {i + 1}/{args.runs}: {name} {base.rate_end_to_end:,.0f} rec/s, "
                    f"{base.cpu_ms_per_record:.3f} ms CPU/rec, {base.peak_rss_mb:.0f} MB"
                )
                baseline_runs[name].append(base)
        if args.first_answer_runs:
            first = first_answer.measure(
                broker.bootstrap,
                sim,
                workdir / "first-answer",
                args.kafka_kit,
                args.first_answer_runs,
                args.first_answer_records,
                log,
            )
    return {
        "worker": worker_runs,
        "processes": multi_runs,
        "baselines": baseline_runs,
        "first_answer": first,
    }


def memory_bench(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The backlog memory benchmark (bench/backlog_memory.py), when it exists."""
    if args.no_memory:
        return None
    try:
        from bench import backlog_memory  # type: ignore[attr-defined]
    except ImportError:
        log("backlog memory benchmark not available (bench/backlog_memory.py)")
        return None
    log(f"backlog memory benchmark: {args.memory_backlog:,} records ...")
    return dict(backlog_memory.run(args.memory_backlog))


def environment() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    return {
        "commit": commit,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def build_results(
    args: argparse.Namespace, rounds: dict[str, Any], memory: dict[str, Any] | None
) -> dict[str, Any]:
    worker = summarize(rounds["worker"], WORKER_FIELDS)
    multi = summarize(rounds["processes"], WORKER_FIELDS) if rounds["processes"] else None
    baselines = {
        name: summarize(runs, BASELINE_FIELDS) for name, runs in rounds["baselines"].items()
    }
    for summary in baselines.values():
        summary["worker_speedup_end_to_end"] = (
            worker["rate_end_to_end"] / summary["rate_end_to_end"]
        )
        summary["worker_speedup_steady"] = worker["rate_steady"] / summary["rate_steady"]
        # Issue 12's measure: the worker's whole command (start to exit) against the script's
        # rate, as first reported; and whole command against whole command.
        summary["worker_whole_vs_end_to_end"] = worker["rate_wall"] / summary["rate_end_to_end"]
        summary["worker_whole_vs_whole"] = worker["rate_wall"] / summary["rate_wall"]
        if multi is not None:
            summary["processes_whole_vs_whole"] = multi["rate_wall"] / summary["rate_wall"]
            summary["processes_whole_vs_end_to_end"] = (
                multi["rate_wall"] / summary["rate_end_to_end"]
            )
    return {
        "settings": {
            "records": args.records,
            "runs": args.runs,
            "baseline_records": args.baseline_records,
            "warmup_records": args.warmup_records,
            "first_answer_records": args.first_answer_records,
            "worker_knobs": WORKER_KNOBS,
            "processes": args.processes,
        },
        "environment": environment(),
        "worker": worker,
        "worker_processes": multi,
        "baselines": baselines,
        "memory": memory,
        "first_answer": rounds["first_answer"],
        "runs": {
            "worker": [r.as_dict() for r in rounds["worker"]],
            "worker_processes": [r.as_dict() for r in rounds["processes"]],
            **{name: [r.as_dict() for r in runs] for name, runs in rounds["baselines"].items()},
        },
    }


PACKAGES = ("schemas", "providers", "sinks", "bus", "pipeline", "consumers", "cli")


def compile_bytecode() -> None:
    """Measure the worker as installed: with its bytecode written, as `make install` does."""
    for package in PACKAGES:
        if (REPO / package).is_dir():
            compileall.compile_dir(REPO / package, quiet=2)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    compile_bytecode()
    load_at_start = os.getloadavg()  # the machine may be shared: say how loaded it was

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="frugal-bench-") as tmp:
        rounds = run_rounds(args, Path(tmp), log)
    memory = memory_bench(args, log)
    results = build_results(args, rounds, memory)
    results["environment"]["load_avg_at_start"] = load_at_start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_report(results)
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
