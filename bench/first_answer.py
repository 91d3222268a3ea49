"""Time to first answer on each broker: a small `frugal worker --drain`, start to first answer.

The 20,000-job runs measure it too, on the embedded broker only; issue 12 asks for it on real
Kafka as well (the kit in ../shared/kafka, named by FRUGAL_TEST_KAFKA_KIT or --kafka-kit).
Real Kafka refuses session timeouts under 6 s; Tansu holds a new group's first join for half
the session timeout, so each broker runs with the session the worker can have there.
"""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.e2e_throughput import run_once
from bench.harness import Sim
from bus.broker import free_port

EMBEDDED_SESSION_S = 2  # what the throughput runs use (bench/workload.py)
KAFKA_SESSION_S = 6  # Kafka's group.min.session.timeout.ms


@contextmanager
def kafka_kit(kit: Path, workdir: Path) -> Iterator[str]:
    """A single-node Kafka from the kit's own launcher; yields its bootstrap address."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)

    def launcher(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(kit / "bin" / "kafka-local"), *args, "--dir", str(workdir)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    started = launcher("start", "--port", str(port))
    if started.returncode != 0:
        raise RuntimeError(f"kafka-local start failed: {started.stdout}{started.stderr}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        launcher("stop")


def first_answers(
    bootstrap: str, sim: Sim, workdir: Path, runs: int, records: int, session_s: float
) -> list[float]:
    """Seconds from `worker --drain` start to its first answer, one per run (fresh topics)."""
    knobs: dict[str, dict[str, Any]] = {"kafka": {"session_timeout_s": session_s}}
    return [
        run_once(bootstrap, sim, records, workdir / f"first-{i}", knobs).join_s for i in range(runs)
    ]


def measure(
    embedded: str,
    sim: Sim,
    workdir: Path,
    kit: Path | None,
    runs: int,
    records: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Median first answer per broker, with every run's figure."""
    found: dict[str, Any] = {}
    brokers = [("embedded", EMBEDDED_SESSION_S)] + ([("kafka", KAFKA_SESSION_S)] if kit else [])
    for name, session in brokers:
        if name == "kafka":
            assert kit is not None
            with kafka_kit(kit, workdir / "kafka") as bootstrap:
                times = first_answers(bootstrap, sim, workdir / name, runs, records, session)
        else:
            times = first_answers(embedded, sim, workdir / name, runs, records, session)
        found[name] = {"median_s": statistics.median(times), "runs_s": times}
        log(f"first answer on {name}: " + ", ".join(f"{t:.2f}" for t in times) + " s")
    return found
