"""How a rebalance reads in the worker's log: which partitions a generation holds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any


def describe(partitions: Iterable[Any]) -> str:
    """`topic[0,1] other[2]` for topic-partitions (anything with .topic and .partition)."""
    by_topic: defaultdict[str, list[int]] = defaultdict(list)
    for tp in partitions:
        by_topic[tp.topic].append(tp.partition)
    if not by_topic:
        return "no partitions"
    return " ".join(
        f"{topic}[{','.join(map(str, sorted(numbers)))}]"
        for topic, numbers in sorted(by_topic.items())
    )
