"""Each worker paces itself at its share of the group's partitions."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import pytest

from pipeline.limit_share import partition_share
from pipeline.limits import RATE_MARGIN, ProviderLimiter
from schemas.config import ProviderConfig


class TP(NamedTuple):
    topic: str
    partition: int


COUNTS = {"p.classify": 6, "p.extract": 6, "p.retry": 6}


def test_the_share_is_the_held_partitions_over_all_partitions_of_the_topics() -> None:
    held = [TP(t, p) for t in COUNTS for p in (0, 3)]
    assert partition_share(held, COUNTS, COUNTS.get) == pytest.approx(1 / 3)
    everything = [TP(t, p) for t in COUNTS for p in range(6)]
    assert partition_share(everything, COUNTS, COUNTS.get) == 1.0


def test_partitions_of_other_topics_do_not_count_and_unknown_counts_give_no_share() -> None:
    held = [TP("p.classify", 0), TP("elsewhere", 0)]
    assert partition_share(held, ["p.classify"], COUNTS.get) == pytest.approx(1 / 6)
    assert partition_share(held, ["p.classify", "missing"], COUNTS.get) is None


async def test_a_limiter_paces_at_its_share_of_the_rpm() -> None:
    limiter = ProviderLimiter(ProviderConfig(name="p", base_url="http://x/v1", rpm=3600))
    limiter.adaptive.share = 1.0  # skip the slow start
    limiter.set_group_share(0.25)
    loop = asyncio.get_running_loop()
    async with limiter.slot(1):
        pass
    limiter._requests.level = 0  # type: ignore[union-attr]  # no saved-up burst
    started = loop.time()
    for _ in range(10):
        async with limiter.slot(1):
            pass
    rate = 10 / (loop.time() - started)
    expected = 3600 / 60 * RATE_MARGIN * 0.25  # ~14 calls/s, not ~57
    assert expected * 0.8 < rate < expected * 1.3
