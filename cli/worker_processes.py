"""`frugal worker --processes N`: N worker processes in one consumer group, under one command.

A worker is one Python process, so it works on one core at a time. Several of them in the same
consumer group split the partitions between them, and every guarantee that holds for workers
on several machines holds for these (commit after durable, caps, limits paced at each one's
share of the partitions, exactly-once answers across rebalances).

The command forks the children before anything heavy is imported, so they start in parallel
and the first answer comes as soon as with one process; an embedded broker is started once, by
the parent, and shared. The parent only waits and relays signals:

- SIGTERM or SIGINT to the parent reach every child, which finishes its work and exits as a
  lone worker would (a second signal from the terminal's own Ctrl-C is harmless);
- a child that fails stops the others: the command exits with its code, so whatever restarts
  the command restarts all of them;
- a child outlives no parent: each asks the kernel for SIGTERM when its parent dies (Linux), so
  killing the parent with SIGKILL stops them too.

With `--drain`, each child exits once the group's backlog is done; only the first draws the
progress bar (the bar follows the group's committed offsets, so it is the whole backlog's).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import signal
import sys
import traceback
from collections.abc import Callable
from types import FrameType

from schemas.config import Config
from schemas.errors import FrugalError

_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def process_count(wanted: int | str) -> int:
    """`--processes` as a number: an integer of at least 1, or `auto` (one per usable core)."""
    if wanted == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        count = int(wanted)
    except ValueError:
        count = 0
    if count < 1:
        raise FrugalError(f"--processes: expected a whole number >= 1 or 'auto', got {wanted!r}")
    return count


def child_config(config: Config, index: int) -> Config:
    """Child `index`'s copy of the config: its own metrics port (`metrics_port + index`)."""
    port = config.worker.metrics_port
    if not port or index == 0:
        return config
    worker = config.worker.model_copy(update={"metrics_port": port + index})
    return config.model_copy(update={"worker": worker})


def run_processes(count: int, run_child: Callable[[int], int]) -> int:
    """Fork `count` children that each return `run_child(index)`; the worst exit code."""
    pids: dict[int, int] = {}  # pid -> index
    parent = os.getpid()
    forwarding = _forward_stop_signals(pids)
    sys.stdout.flush()  # or the children would write what the parent had buffered again
    sys.stderr.flush()
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:
                _become_child(parent, run_child, index)  # never returns
            pids[pid] = index
        gc.enable()  # the children start up without it (cli/entry.py); the parent only waits
        return _wait_all(pids)
    finally:
        _restore(forwarding)
        _stop(pids)


def _become_child(parent: int, run_child: Callable[[int], int], index: int) -> None:
    code = 1
    try:
        for sig in STOP_SIGNALS:
            signal.signal(
                sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.default_int_handler
            )
        _die_with_parent(parent)
        code = run_child(index)
    except FrugalError as error:
        print(f"frugal: worker process {index}: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # a child must never return into the parent's code
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process when its parent dies (Linux); exit now if it already has."""
    libc_name = ctypes.util.find_library("c")
    if libc_name and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _forward_stop_signals(pids: dict[int, int]) -> dict[int, object]:
    def forward(signum: int, frame: FrameType | None) -> None:
        _signal_all(pids, signum)

    return {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}


def _restore(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def _wait_all(pids: dict[int, int]) -> int:
    """Wait for every child; the first failure stops the rest and decides the exit code."""
    worst = 0
    while pids:
        pid, status = os.wait()
        if pids.pop(pid, None) is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code  # killed by a signal: the shell's convention
        if code != 0 and worst == 0:
            worst = code
            _stop(pids)
    return worst


def _stop(pids: dict[int, int]) -> None:
    _signal_all(pids, signal.SIGTERM)


def _signal_all(pids: dict[int, int], signum: int) -> None:
    """Send `signum` to every child still listed (one that is gone already is skipped)."""
    for pid in list(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
