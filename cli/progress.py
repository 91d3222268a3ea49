"""Progress of long commands (drain, publish): a `rich` bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

PLAIN_EVERY_S = 5.0  # without a terminal: one status line this often (and at start and end)


@dataclass
class Snapshot:
    """Where a long command stands: `done` of `total`, plus what it spent and waits on."""

    done: int = 0
    total: int = 0
    spent_usd: float | None = None
    open_batches: int | None = None


class ProgressView(Protocol):
    def show(self, now: Snapshot) -> None: ...
    def close(self, now: Snapshot) -> None: ...


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f}/s" if speed else "-/s", style="progress.data.speed")


def _extras(now: Snapshot) -> dict[str, str]:
    return {
        "spend": "" if now.spent_usd is None else f"${now.spent_usd:.6f}",
        "batches": "" if now.open_batches is None else f"open batches {now.open_batches}",
    }


class RichBar:
    """A live bar on the terminal: done/total, percent, rate, ETA, spend so far, open batches."""

    def __init__(self, label: str, stream: IO[str]) -> None:
        self._progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            _RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[spend]}"),
            TextColumn("{task.fields[batches]}"),
            console=Console(file=stream, force_terminal=True),
            redirect_stdout=False,
            redirect_stderr=stream is sys.stderr,
        )
        self._stream = stream
        self._task = self._progress.add_task(label, total=None, spend="", batches="")
        self._progress.start()
        self._log_handlers = self._log_above_the_bar()

    def _log_above_the_bar(self) -> list[logging.StreamHandler[IO[str]]]:
        """Log lines to our stream go through rich's stand-in for it, printed above the bar."""
        if sys.stderr is self._stream:  # rich did not redirect it (not a terminal after all)
            return []
        handlers = [
            h
            for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler) and h.stream is self._stream
        ]
        for handler in handlers:
            handler.setStream(sys.stderr)
        return handlers

    def show(self, now: Snapshot) -> None:
        extras = _extras(now)
        self._progress.update(
            self._task,
            completed=now.done,
            total=max(now.total, now.done),
            spend=extras["spend"],
            batches=extras["batches"],
        )

    def close(self, now: Snapshot) -> None:
        self.show(now)
        self._progress.refresh()
        self._progress.stop()
        for handler in self._log_handlers:
            handler.setStream(self._stream)


@dataclass
class PlainLines:
    """One line per PLAIN_EVERY_S for logs and pipes: `label: 40/100 (40%) 12.5/s ETA 5s ...`."""

    label: str
    stream: IO[str]
    every_s: float = PLAIN_EVERY_S
    _started: float = field(default_factory=time.monotonic)
    _last: float = field(default=float("-inf"))

    def show(self, now: Snapshot) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self._print(now)

    def close(self, now: Snapshot) -> None:
        self._print(now)

    def _print(self, now: Snapshot) -> None:
        self._last = time.monotonic()
        elapsed = max(1e-9, self._last - self._started)
        rate = now.done / elapsed
        share = now.done / now.total if now.total else 1.0
        eta = f"{(now.total - now.done) / rate:.0f}s" if rate > 0 else "-"
        parts = [f"{self.label}: {now.done}/{now.total} ({share:.0%})", f"{rate:.1f}/s"]
        parts.append(f"ETA {eta}")
        parts.extend(v for v in _extras(now).values() if v)
        print(" ".join(parts), file=self.stream, flush=True)


class Silent:
    def show(self, now: Snapshot) -> None:
        pass

    def close(self, now: Snapshot) -> None:
        pass


def progress_view(label: str, stream: IO[str], enabled: bool = True) -> ProgressView:
    """A bar if `stream` is a terminal, plain lines if not, nothing if not enabled."""
    if not enabled:
        return Silent()
    if stream.isatty():
        return RichBar(label, stream)
    return PlainLines(label, stream)
