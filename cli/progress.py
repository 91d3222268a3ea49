"""Progress of long commands (drain, publish): a `rich` bar on a terminal (`cli/progress_bar.py`),
plain lines otherwise."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import IO, Protocol

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


def extras(now: Snapshot) -> dict[str, str]:
    return {
        "spend": "" if now.spent_usd is None else f"${now.spent_usd:.6f}",
        "batches": "" if now.open_batches is None else f"open batches {now.open_batches}",
    }


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
        parts.extend(v for v in extras(now).values() if v)
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
        from cli.progress_bar import RichBar  # rich (~25 ms) only where a bar is drawn

        return RichBar(label, stream)
    return PlainLines(label, stream)
