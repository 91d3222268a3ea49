"""Running the pieces a benchmark needs as separate processes, and measuring a child's cost."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.workload import BENCH_KEY, KEY_ENV, write_sim_config
from bus.broker import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.05


def bench_env(bootstrap: str = "") -> dict[str, str]:
    env = {**os.environ, KEY_ENV: BENCH_KEY, "PYTHONUNBUFFERED": "1"}
    if bootstrap:
        env["FRUGAL_KAFKA_BOOTSTRAP"] = bootstrap
    return env


@dataclass(frozen=True)
class Sim:
    url: str
    pid: int


@contextmanager
def simulator(workdir: Path) -> Iterator[Sim]:
    """`frugal sim` in its own process (so it never shares the measured process's CPU)."""
    port = free_port()
    config = write_sim_config(workdir / "sim.toml")
    log = (workdir / "sim.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "sim", "--port", str(port), "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=bench_env(),
        cwd=REPO,
    )
    try:
        wait_for_port(port, timeout_s=30, proc=proc)  # type: ignore[arg-type]
        yield Sim(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU of a process and all its descendants (`worker --processes N`): its own, its reaped
    children's (cutime + cstime) and its living children's."""
    own = cpu_seconds(pid, with_reaped_children=True)
    if own is None:
        return None
    return own + sum(tree_cpu_seconds(child) or 0.0 for child in _children(pid))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(p) for p in task.read_text().split())
        except OSError:
            continue
    return found


def cpu_seconds(pid: int, with_reaped_children: bool = False) -> float | None:
    """user+sys CPU of a running process so far, from /proc (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    used = int(fields[11]) + int(fields[12])  # utime, stime
    if with_reaped_children:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime
    return used / _TICKS


@dataclass
class Measured:
    """One child process, start to exit: wall time, CPU, peak RSS and a CPU-over-time trace."""

    returncode: int
    started: float  # epoch seconds
    ended: float
    cpu_s: float
    peak_rss_mb: float
    trace: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, cpu s)
    watched: list[tuple[float, float]] = field(default_factory=list)  # another process's trace

    @property
    def wall_s(self) -> float:
        return self.ended - self.started

    def cpu_at(self, moment: float) -> float:
        """CPU used by `moment`, interpolated between samples."""
        return _interpolate([(self.started, 0.0), *self.trace, (self.ended, self.cpu_s)], moment)

    def watched_cpu_between(self, start: float, end: float) -> float:
        """CPU the watched process used between two moments (0 when none was watched)."""
        if len(self.watched) < 2:
            return 0.0
        return _interpolate(self.watched, end) - _interpolate(self.watched, start)


def _interpolate(points: list[tuple[float, float]], moment: float) -> float:
    for (t0, c0), (t1, c1) in itertools.pairwise(points):
        if t0 <= moment <= t1:
            return c0 if t1 == t0 else c0 + (c1 - c0) * (moment - t0) / (t1 - t0)
    return points[-1][1] if moment > points[-1][0] else points[0][1]


def measure(
    args: list[str],
    *,
    env: dict[str, str],
    log: Path,
    stdin: Path | None = None,
    timeout_s: float = 600,
    watch: int | None = None,
) -> Measured:
    """Run `args` to exit, sampling its CPU (and `watch`'s); CPU and peak RSS from wait4."""
    with log.open("wb") as out, stdin.open("rb") if stdin else open(os.devnull, "rb") as inp:
        started = time.time()
        proc = subprocess.Popen(
            args, stdin=inp, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )
        trace: list[tuple[float, float]] = []
        watched: list[tuple[float, float]] = []
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.time()
            if now - started > timeout_s:
                proc.kill()
            cpu = tree_cpu_seconds(proc.pid)
            if cpu is not None:
                trace.append((now, cpu))
            other = cpu_seconds(watch) if watch is not None else None
            if other is not None:
                watched.append((now, other))
            time.sleep(SAMPLE_S)
        ended = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        returncode=proc.returncode,
        started=started,
        ended=ended,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        trace=trace,
        watched=watched,
    )
