"""Progress of `worker --drain` and `publish`: a bar on a terminal, plain lines when piped."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.frugal_testkit import (
    REPO,
    SIM_KEY,
    default_models,
    frugal_env,
    jsonl,
    run_frugal,
    sim_providers,
    write_config,
)

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker
from cli.progress import PlainLines, Snapshot
from providers.sim import SimThread
from schemas.config import SimConfig

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(SimConfig(api_key=SIM_KEY, latency_ms=5)) as running:
        yield running


@pytest.fixture
def config(broker: EmbeddedBroker, sim: SimThread, prefix: str, tmp_path: Path) -> Path:
    path = write_config(
        tmp_path / "frugal.toml",
        prefix=prefix,
        data_dir=tmp_path / "data",
        providers=sim_providers({"openai": sim.base_url}),
        models=[m for m in default_models() if m["provider"] == "openai"],
    )
    tickets = jsonl(support_tickets(60))
    published = run_frugal(
        ["publish", "--config", str(path), "-"], bootstrap=broker.bootstrap, stdin=tickets
    )
    assert published.returncode == 0, published.stderr
    # Piped: the publish progress is a plain line on stderr, the summary alone on stdout.
    assert "publishing: 60/60 (100%)" in published.stderr
    assert (
        published.stdout.strip() == "published 60 records (classify: 60); 60 new, 0 already known"
    )
    return path


def run_in_terminal(args: list[str], bootstrap: str, timeout: float = 120) -> tuple[int, str]:
    """Run `frugal ARGS` with stdout and stderr on a pseudo-terminal 160 columns wide."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {k: v for k, v in frugal_env(bootstrap).items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=REPO,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:  # until the child closes the terminal (EIO)
            ready, _, _ = select.select([leader], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if time.monotonic() >= deadline:
            proc.kill()
    return proc.wait(timeout=10), b"".join(chunks).decode(errors="replace")


def test_drain_on_a_terminal_shows_a_bar_that_reaches_100_percent(
    broker: EmbeddedBroker, config: Path
) -> None:
    code, screen = run_in_terminal(["worker", "--config", str(config), "--drain"], broker.bootstrap)
    assert code == 0, screen[-3000:]
    text = ANSI.sub("", screen)
    assert "━" in text  # rich's bar
    final = [line for line in re.split(r"[\r\n]", text) if "60/60" in line]
    assert final, text[-3000:]
    assert "100%" in final[-1] and "$0.0" in final[-1], final[-1]
    assert "open batches 0" in final[-1]


def test_drain_piped_prints_plain_status_lines(broker: EmbeddedBroker, config: Path) -> None:
    done = run_frugal(["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("drain: ")]
    assert lines[-1].startswith("drain: 60/60 (100%)"), lines
    assert re.search(r" [\d.]+/s ETA \S+ \$\d+\.\d{6} open batches 0$", lines[-1]), lines[-1]
    assert "\x1b[" not in done.stderr and "━" not in done.stderr


def test_plain_lines_are_throttled_but_always_show_the_end() -> None:
    out = io.StringIO()
    view = PlainLines("drain", out, every_s=3600)
    view.show(Snapshot(done=0, total=10))
    view.show(Snapshot(done=5, total=10))  # within the interval: not printed
    view.close(Snapshot(done=10, total=10, spent_usd=0.5, open_batches=2))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("drain: 0/10 (0%)")
    assert lines[1].startswith("drain: 10/10 (100%)")
    assert lines[1].endswith("$0.500000 open batches 2")


def test_publish_on_a_terminal_shows_a_bar(
    broker: EmbeddedBroker, config: Path, tmp_path: Path
) -> None:
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(jsonl(support_tickets(1200, prefix="bulk")))  # ids not published yet
    code, screen = run_in_terminal(
        ["publish", "--config", str(config), str(tickets)], broker.bootstrap
    )
    assert code == 0, screen[-3000:]
    text = ANSI.sub("", screen)
    bars = [line for line in re.split(r"[\r\n]", text) if line.startswith("publishing ")]
    assert bars and "━" in bars[-1], text[-2000:]
    assert "1200/1200" in bars[-1] and "100%" in bars[-1]
    assert "published 1200 records (classify: 1200)" in text
