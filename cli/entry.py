"""The `frugal` command's entry point: no cyclic GC while the command imports its modules.

A command's start-up builds ~140k long-lived objects (faust, pydantic's schemas, the lake)
and frees almost none of them, while CPython's default thresholds run a collection every 700
allocations: ~80 ms of the ~0.4 s before a worker can join its group (`import cli.main,
cli.worker_main`, 10 runs each: 0.39-0.43 s with the collector, 0.32-0.34 s without). The
collector comes back once a command has parsed its arguments (`cli.main.main`); `frugal
worker` brings it back once it has started up (`cli.runtime.settle_heap`, which freezes the
start-up heap first, so that no collection walks it again).
"""

from __future__ import annotations

import gc


def main() -> int:
    gc.disable()
    from cli.main import main as run_command

    return run_command()
