"""`worker --drain` ends on its last commit, not up to a poll interval after it."""

from __future__ import annotations

import asyncio
import time

from bus.drain import DrainWatch


async def test_a_commit_here_ends_the_wait_between_looks() -> None:
    watch = DrainWatch("127.0.0.1:1", "group", ["topic"])  # never started: no broker needed
    started = time.monotonic()
    waiting = asyncio.create_task(watch.pause(30.0))
    await asyncio.sleep(0)  # the wait has begun
    watch.nudge()
    await asyncio.wait_for(waiting, 5.0)
    assert time.monotonic() - started < 5.0


async def test_without_a_commit_the_wait_is_the_poll_interval() -> None:
    watch = DrainWatch("127.0.0.1:1", "group", ["topic"])
    watch.nudge()
    await watch.pause(0.01)  # the nudge before is used up by this look
    started = time.monotonic()
    await watch.pause(0.2)
    assert time.monotonic() - started >= 0.19
