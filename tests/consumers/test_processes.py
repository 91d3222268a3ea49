"""`frugal worker --processes N`: one command, N worker processes in one group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.frugal_testkit import (
    SIM_KEY,
    jsonl,
    run_frugal,
    start_frugal,
    wait_for,
)
from support.kafka_kit import KafkaKitBroker
from support.worker_runs import (
    assert_each_job_answered_once,
    one_sim_config,
    results_by_worker,
)

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker
from cli.worker_processes import child_config, process_count
from providers.sim import SimThread
from schemas.config import Config, SimConfig, WorkerConfig
from schemas.errors import FrugalError

JOBS = 400


def _pid(worker: str) -> int:
    """The process id in a `worker` column value (`<host>-<pid>`)."""
    return int(worker.rsplit("-", 1)[1])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); /proc says it has exited.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _config(tmp: Path, broker: object, sim_base: str, **sections: Any) -> Path:
    return one_sim_config(
        tmp / "frugal.toml",
        prefix=f"procs-{tmp.name}",
        data_dir=tmp / "data",
        sim_base=sim_base,
        broker=broker,
        partitions=4,
        **sections,
    )


def _publish(config: Path, bootstrap: str, jobs: list[dict[str, Any]]) -> None:
    published = run_frugal(
        ["publish", "--config", str(config), "-"], bootstrap=bootstrap, stdin=jsonl(jobs)
    )
    assert published.returncode == 0, published.stderr


@pytest.fixture(scope="module")
def drained(
    each_broker: EmbeddedBroker | KafkaKitBroker, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("procs")
    # Paced so that one process alone needs ~2.5 s for the backlog (16 calls of 100 ms at a
    # time): on Kafka the second process's join waits for the first to rejoin at its next
    # heartbeat (up to ~1.2 s), and a faster drain could be over before the split.
    with SimThread(SimConfig(api_key=SIM_KEY, latency_ms=100)) as sim:
        config = _config(tmp, each_broker, sim.base_url, worker={"max_in_flight": 16})
        jobs = support_tickets(JOBS)
        _publish(config, each_broker.bootstrap, jobs)
        run = run_frugal(
            ["worker", "--config", str(config), "--drain", "--processes", "2"],
            bootstrap=each_broker.bootstrap,
            timeout=180,
        )
        calls = sim.stats()["requests"]
    return {"run": run, "data": tmp / "data", "jobs": jobs, "calls": calls}


def test_a_two_process_drain_answers_every_job_once(drained: dict[str, Any]) -> None:
    run = drained["run"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert_each_job_answered_once(drained["data"], drained["jobs"])
    assert drained["calls"] == JOBS  # nothing paid twice between the two processes


def test_both_processes_took_a_share_of_the_partitions(drained: dict[str, Any]) -> None:
    by_worker = results_by_worker(drained["data"])
    assert len(by_worker) == 2, by_worker
    assert all(count > 0 for count in by_worker.values())
    stderr = drained["run"].stderr
    assert "[worker 1] frugal.worker: generation" in stderr
    assert "Traceback" not in stderr


def _start_two(tmp: Path, broker: EmbeddedBroker, sim_base: str) -> tuple[Any, list[int], Path]:
    """A long-running two-process worker that has answered jobs from both processes."""
    config = _config(tmp, broker, sim_base)
    parent = start_frugal(
        ["worker", "--config", str(config), "--processes", "2"],
        bootstrap=broker.bootstrap,
        log=tmp / "worker.log",
    )
    _publish(config, broker.bootstrap, support_tickets(200))
    by_worker = wait_for(
        lambda: (found := results_by_worker(tmp / "data")) and len(found) == 2 and found,
        timeout=90,
        what="both worker processes to answer jobs",
    )
    return parent, [_pid(w) for w in by_worker], config


def test_sigterm_to_the_command_stops_every_process_cleanly(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    with SimThread(SimConfig(api_key=SIM_KEY)) as sim:
        parent, children, _ = _start_two(tmp_path, broker, sim.base_url)
        assert parent.pid not in children
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0
    assert all(_gone(pid) for pid in children)
    log = (tmp_path / "worker.log").read_text()
    assert log.count("frugal.worker: stopped after") == 2
    assert "Traceback" not in log


def test_the_processes_stop_when_the_command_is_killed(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    with SimThread(SimConfig(api_key=SIM_KEY)) as sim:
        parent, children, _ = _start_two(tmp_path, broker, sim.base_url)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(
            lambda: all(_gone(pid) for pid in children),
            timeout=60,
            what="the orphaned worker processes to stop",
        )
    # They were told SIGTERM, not killed: each shut down as a lone worker does.
    assert (tmp_path / "worker.log").read_text().count("frugal.worker: stopped after") == 2


def test_one_process_failing_stops_the_command(broker: EmbeddedBroker, tmp_path: Path) -> None:
    # Process 1 serves metrics on port + 1, held here by another socket.
    with SimThread(SimConfig(api_key=SIM_KEY)) as sim, _port_pair_second_taken() as port:
        config = _config(tmp_path, broker, sim.base_url)
        args = ["worker", "--config", str(config), "--processes", "2"]
        run = run_frugal(
            [*args, "--metrics-port", str(port)], bootstrap=broker.bootstrap, timeout=120
        )
    assert run.returncode != 0
    assert "worker process 1: metrics: cannot listen" in run.stderr, run.stderr[-2000:]
    assert str(port + 1) in run.stderr


@contextlib.contextmanager
def _port_pair_second_taken() -> Iterator[int]:
    """A free port P whose neighbour P + 1 is held by a listening socket meanwhile."""
    for _ in range(50):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1] - 1
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue  # P itself is in use: try another pair
            taken.listen()
            yield port
            return
    raise AssertionError("no pair of neighbouring free ports found")


@pytest.mark.parametrize("wanted", ["0", "-2", "two", ""])
def test_a_bad_process_count_is_one_clear_error(wanted: str) -> None:
    with pytest.raises(FrugalError, match="--processes: expected a whole number >= 1 or 'auto'"):
        process_count(wanted)


def test_auto_is_one_process_a_usable_core() -> None:
    assert process_count("auto") == len(os.sched_getaffinity(0))
    assert process_count(3) == 3
    assert Config(worker=WorkerConfig(processes="auto")).worker.processes == "auto"


def test_each_process_serves_metrics_on_its_own_port() -> None:
    config = Config(worker=WorkerConfig(metrics_port=9464))
    assert [child_config(config, i).worker.metrics_port for i in range(3)] == [9464, 9465, 9466]
    assert child_config(Config(), 2).worker.metrics_port is None
    assert child_config(Config(worker=WorkerConfig(metrics_port=0)), 1).worker.metrics_port == 0


def test_a_bad_processes_setting_is_refused_with_the_option_name(tmp_path: Path) -> None:
    bad = tmp_path / "frugal.toml"
    bad.write_text("[worker]\nprocesses = 0\n")
    run = run_frugal(["worker", "--config", str(bad)], bootstrap="127.0.0.1:1", timeout=60)
    assert run.returncode == 1
    assert "processes" in run.stderr and "Traceback" not in run.stderr
