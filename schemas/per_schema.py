"""Work done once per JSON Schema, not once per job: a workload sends a few schemas over and
over (checking them, compiling validators, deciding OpenAI's strict mode)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import pydantic_core

T = TypeVar("T")


def once_per_schema(work: Callable[[Any], T]) -> Callable[[Any], T]:
    """`work(schema)`, remembered by the schema's JSON as sent. pydantic's encoder makes the key
    (~0.4 us; a sorted `json.dumps` took 2.7); the same schema with its keys in another order
    only costs one more entry. `work` gets its own copy, parsed from that JSON."""

    @lru_cache(maxsize=1024)
    def from_json(schema_json: bytes) -> T:
        return work(json.loads(schema_json))

    def remembered(schema: Any) -> T:
        return from_json(pydantic_core.to_json(schema))

    return remembered
