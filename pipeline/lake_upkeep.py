"""The worker's share of lake upkeep: compact every `[storage] compact_interval_s`, off the loop."""

from __future__ import annotations

import asyncio
import logging

from schemas.config import StorageConfig
from schemas.errors import FrugalError
from sinks.compaction import compact

log = logging.getLogger(__name__)


async def compact_periodically(storage: StorageConfig, stop: asyncio.Event) -> None:
    """Run compaction passes until `stop`; a failed pass is logged and tried again next time."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            await asyncio.wait({stopping}, timeout=storage.compact_interval_s)
            if stop.is_set():
                break
            await compact_once(storage)
    finally:
        stopping.cancel()


async def compact_once(storage: StorageConfig, min_age_s: float | None = None) -> None:
    try:
        report = await asyncio.to_thread(compact, storage, min_age_s)
    except FrugalError as exc:
        log.warning("lake compaction failed, will retry: %s", exc)
        return
    log.info("lake %s", report.line())
