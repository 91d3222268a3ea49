"""The first records of a generation, one per agent, share one done-set refresh."""

from __future__ import annotations

import asyncio

import pytest

from consumers.worker import StreamWorker
from schemas.config import Config


class CountingPipeline:
    """Stands in for the pipeline's done-set refresh only (no broker is reached)."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.release = asyncio.Event()
        self.fail_next = False

    async def refresh_done(self, after_current: bool = False) -> None:
        assert after_current  # a refresh begun before the rebalance would be too early
        self.refreshes += 1
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise OSError("lake unreadable")


async def test_agents_first_records_wait_for_one_refresh_per_generation() -> None:
    worker = StreamWorker(Config(), "127.0.0.1:9", ["classify", "extract"])
    pipeline = CountingPipeline()
    worker.pipeline = pipeline  # type: ignore[assignment]
    waiting = [asyncio.create_task(worker._know_what_is_done(3)) for _ in range(4)]
    await asyncio.sleep(0)  # every agent's first record is waiting now
    assert not any(w.done() for w in waiting)
    pipeline.release.set()
    await asyncio.gather(*waiting)
    assert pipeline.refreshes == 1

    await worker._know_what_is_done(3)  # known: no refresh
    await worker._know_what_is_done(4)  # a new generation: one more
    assert pipeline.refreshes == 2


async def test_a_failed_refresh_is_not_shared_by_the_next_record() -> None:
    worker = StreamWorker(Config(), "127.0.0.1:9", ["classify"])
    pipeline = CountingPipeline()
    pipeline.release.set()
    pipeline.fail_next = True
    worker.pipeline = pipeline  # type: ignore[assignment]
    with pytest.raises(OSError):
        await worker._know_what_is_done(1)
    await worker._know_what_is_done(1)  # tries again rather than reuse the failure
    assert pipeline.refreshes == 2
