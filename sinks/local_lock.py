"""An exclusive lock between the processes of one machine, held on a file in the data dir."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def local_lock(data_dir: Path, name: str) -> Iterator[None]:
    """Wait for, then hold, the lock `<data_dir>/<name>` until the block ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
