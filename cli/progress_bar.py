"""The progress bar drawn on a terminal (`rich`), imported only when one is drawn."""

from __future__ import annotations

import logging
import sys
from typing import IO

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

from cli.progress import Snapshot, extras


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f}/s" if speed else "-/s", style="progress.data.speed")


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
        more = extras(now)
        self._progress.update(
            self._task,
            completed=now.done,
            total=max(now.total, now.done),
            spend=more["spend"],
            batches=more["batches"],
        )

    def close(self, now: Snapshot) -> None:
        self.show(now)
        self._progress.refresh()
        self._progress.stop()
        for handler in self._log_handlers:
            handler.setStream(self._stream)
