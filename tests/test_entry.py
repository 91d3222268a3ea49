"""The `frugal` entry point imports with the cyclic collector off, and every command gets it back."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import entry
from cli.runtime import YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.enable()


def test_a_command_other_than_worker_runs_with_the_collector_on(
    collector_restored: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # built-in defaults: the lake under ./data
    monkeypatch.setattr(sys, "argv", ["frugal", "sql", "SELECT 40 + 2 AS answer"])
    seen: list[bool] = []
    import cli.main

    real = cli.main.cmd_sql
    monkeypatch.setattr(
        cli.main, "cmd_sql", lambda args, config: seen.append(gc.isenabled()) or real(args, config)
    )
    assert entry.main() == 0
    assert seen == [True]
    assert "42" in capsys.readouterr().out


def test_the_worker_gets_the_collector_back_once_started_with_the_start_up_heap_frozen(
    collector_restored: None,
) -> None:
    gc.disable()  # as the entry point leaves it for `frugal worker`
    start_up = [object() for _ in range(1000)]  # noqa: F841  (start-up's long-lived objects)
    settle_heap()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= 1000
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
