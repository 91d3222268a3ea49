"""The batcher's edge cases with a stand-in batch API: worst cases are held from submission and
settled per result; a refused batch keeps its requests and backs off; a full model queue
submits without waiting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline.batching import Batcher, Waiting
from pipeline.budgets import Budgets, CallScope
from providers.batch_base import BatchClient, BatchEntry, BatchOutcome, BatchState
from schemas.batches import BatchItem
from schemas.completion import CompletionRequest
from schemas.config import BatchConfig, BudgetConfig, Config, ModelConfig, ProviderConfig
from schemas.errors import InvalidRequest, RateLimited

MODEL = ModelConfig(name="m", provider="p", model="m-1")
CONFIG = Config(
    providers=[ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1")],
    models=[MODEL],
    batch=BatchConfig(max_wait_s=0.05, max_requests=3),
    budgets=[BudgetConfig(scope="global", window="total", limit_usd=1.0)],
)
SCOPE = CallScope("p", "m", "classify", "default")


class StandInBatchAPI(BatchClient):
    """Refuses the first `refusals` creations (queue full), then accepts."""

    max_requests = 100

    def __init__(self, refusals: list[Exception]) -> None:
        self.refusals = refusals
        self.submitted: list[list[str]] = []

    async def submit(self, model: ModelConfig, entries: list[BatchEntry]) -> str:
        if self.refusals:
            raise self.refusals.pop(0)
        self.submitted.append([e.custom_id for e in entries])
        return f"batch-{len(self.submitted)}"

    async def state(self, batch_id: str) -> BatchState:
        raise NotImplementedError

    async def cancel(self, batch_id: str) -> BatchState:
        raise NotImplementedError

    async def results(
        self, state: BatchState, model: ModelConfig, requests: Any
    ) -> list[BatchOutcome]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def waiting(i: int, worst: float = 0.1) -> Waiting:
    item = BatchItem(custom_id=f"c{i}", job={"id": f"j{i}"}, created_at="2026-01-01T00:00:00Z",
                     worst_case_usd=worst)  # fmt: skip
    entry = BatchEntry(item.custom_id, CompletionRequest(prompt="x"))
    return Waiting(model=MODEL, item=item, entry=entry, scope=SCOPE, key=f"j{i}#0#0")


async def run_batcher(api: StandInBatchAPI, items: list[Waiting]) -> tuple[Batcher, list[bool], list[bytes]]:  # fmt: skip
    tickets: list[bytes] = []

    async def send(batch_id: str, value: bytes) -> None:
        tickets.append(value)

    budgets = Budgets(CONFIG.budgets)
    batcher = Batcher(CONFIG, {"p": api}, budgets, send, "w1")
    stop = asyncio.Event()
    loop = asyncio.create_task(batcher.run(stop))
    try:
        done = await asyncio.wait_for(asyncio.gather(*(batcher.enqueue(w) for w in items)), 10)
    finally:
        stop.set()
        await loop
    return batcher, list(done), tickets


def held(batcher: Batcher) -> float:
    return sum(r.amount for r in batcher.held.values())


async def test_worst_cases_are_held_from_submission_and_settled_per_result() -> None:
    api = StandInBatchAPI([])
    batcher, done, tickets = await run_batcher(api, [waiting(i) for i in range(5)])
    assert done == [True] * 5 and len(tickets) == 2
    assert [len(s) for s in api.submitted] == [3, 2]  # max_requests, then the rest at max_wait_s
    assert held(batcher) == pytest.approx(0.5)
    await batcher.settle("c0", SCOPE, 0.02)
    await batcher.settle("c1", SCOPE, 0.0)  # expired or cancelled: released
    assert held(batcher) == pytest.approx(0.3)
    assert batcher.known == {f"j{i}#0#0" for i in range(5)}


async def test_a_refused_batch_keeps_its_requests_and_is_tried_again() -> None:
    api = StandInBatchAPI([RateLimited("queue full", retry_after_s=0.05)] * 2)
    batcher, done, _ = await run_batcher(api, [waiting(i) for i in range(2)])
    assert done == [True, True] and api.submitted == [["c0", "c1"]]
    assert held(batcher) == pytest.approx(0.2)  # the refused tries' holds were released


async def test_a_batch_api_that_rejects_the_batch_sends_its_requests_synchronous() -> None:
    api = StandInBatchAPI([InvalidRequest("bad file")])
    batcher, done, tickets = await run_batcher(api, [waiting(0)])
    assert done == [False] and not tickets and held(batcher) == 0


async def test_a_request_a_cap_cannot_hold_goes_synchronous() -> None:
    api = StandInBatchAPI([])
    batcher, done, _ = await run_batcher(api, [waiting(0, worst=0.7), waiting(1, worst=0.7)])
    assert sorted(done) == [False, True] and held(batcher) == pytest.approx(0.7)
