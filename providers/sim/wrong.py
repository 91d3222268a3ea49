"""Simulated answers that are valid but wrong: the simulator's right answer, misread on cue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def misread(value: dict[str, Any], schema: Mapping[str, Any], draw: float) -> dict[str, Any]:
    """`value` with its first changeable field changed so it still validates: another enum
    value (picked by `draw` in [0, 1)), a number off by one, or a string reversed. Unchanged
    when nothing can be misread."""
    found = schema.get("properties")
    props: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    wrong = dict(value)
    for key, sub in props.items():
        if key not in value or not isinstance(sub, Mapping):
            continue
        changed = _misread_field(value[key], sub, draw)
        if changed is not None:
            wrong[key] = changed
            return wrong
    return wrong


def _misread_field(current: Any, schema: Mapping[str, Any], draw: float) -> Any:
    enum = schema.get("enum")
    if isinstance(enum, list):
        others = [v for v in enum if v != current]
        return others[int(draw * len(others))] if others else None
    if isinstance(current, bool):
        return None
    if isinstance(current, int | float):
        high = schema.get("maximum")
        return current - 1 if isinstance(high, int | float) and current + 1 > high else current + 1
    if isinstance(current, str) and current and "format" not in schema:
        return current[::-1] if current[::-1] != current else f"{current}x"
    return None
