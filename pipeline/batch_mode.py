"""Sync or batch: which mode a job goes through, at what price, and why."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from pipeline.batch_results import BatchFollower
from pipeline.batching import UNANSWERED, Batcher, Waiting, custom_id_for, submission_key
from pipeline.budgets import CallScope
from pipeline.deadlines import is_batchable, job_deadline, seconds_left
from pipeline.limits import Limits
from pipeline.prompts import build_request
from pipeline.routing import Candidate, Router, RoutingInput
from providers.batch_base import BatchClient, BatchEntry
from schemas.batches import BatchItem
from schemas.config import Config
from schemas.jobs import TaskJob

MAX_RESUBMISSIONS = 1  # a request whose batch expired or was cancelled goes in one more batch


@dataclass(frozen=True)
class ModeChoice:
    candidate: Candidate  # its costs already at the batch price
    sync_cost_per_answer: float | None


class ModeRouter:
    """Compares batch candidates (list price x the provider's batch discount) with sync ones
    by expected cost per valid answer, as the router orders models."""

    def __init__(self, config: Config, router: Router, limits: Limits, batcher: Batcher) -> None:
        self._config = config
        self._router = router
        self._limits = limits
        self._batcher = batcher

    def discount(self, provider: str) -> float:
        return self._config.provider(provider).batch_discount

    def choose(self, job: TaskJob, need: RoutingInput, skip_models: set[str],
               skip_providers: set[str]) -> ModeChoice | None:  # fmt: skip
        usable = [
            c
            for c in self._router.plan(need).candidates
            if c.model.name not in skip_models
            and c.provider not in skip_providers
            and self._limits.available(c.provider)
        ]
        batchable = [c for c in usable if c.provider in self._batcher.clients]
        if not batchable:
            return None
        best = min(batchable, key=lambda c: c.cost_per_answer * self.discount(c.provider))
        d = self.discount(best.provider)
        sync_best = min((c.cost_per_answer for c in usable), default=None)
        if sync_best is not None and best.cost_per_answer * d >= sync_best:
            return None
        reason = (
            f"batch (x{d:g}): {best.reason.split(': ', 1)[-1]} -> "
            f"${best.cost_per_answer * d:.7f}/answer"
            + (f" vs sync ${sync_best:.7f}" if sync_best is not None else "")
        )
        priced = replace(
            best,
            estimated_cost_usd=best.estimated_cost_usd * d,
            worst_case_usd=best.worst_case_usd * d,
            reason=reason,
        )
        return ModeChoice(priced, sync_best)


class BatchIntake:
    """Takes a batchable job into the batcher; False means: answer it synchronously."""

    def __init__(self, config: Config, modes: ModeRouter, batcher: Batcher) -> None:
        self._config = config
        self._modes = modes
        self._batcher = batcher

    async def take(self, job: TaskJob, need: RoutingInput, published_at: datetime) -> bool:
        deadline = job_deadline(job, self._config, published_at)  # JobError when unparseable
        if not is_batchable(deadline, self._config):
            return False
        parked = job.parked
        if parked and parked.retries.get(UNANSWERED, 0) > MAX_RESUBMISSIONS:
            return False  # its batches expired (or were cancelled) before: answer it now
        key = submission_key(job)
        if key in self._batcher.known:
            return True  # already durably in a submitted batch (redelivered after a crash)
        skip_models = set(parked.skip_models) if parked else set()
        skip_providers = set(parked.exhausted_providers) if parked else set()
        choice = self._modes.choose(job, need, skip_models, skip_providers)
        if choice is None:
            return False
        candidate = choice.candidate
        model = candidate.model
        allowance = min(need.output_allowance, model.max_output_tokens)
        hours = seconds_left(deadline) / 3600
        assert deadline is not None
        item = BatchItem(
            custom_id=custom_id_for(key),
            # the deadline travels as a time, so a resubmission does not move it
            job=job.model_copy(update={"deadline": deadline.isoformat()}).model_dump(
                mode="json", by_alias=True
            ),
            created_at=published_at,
            reason=f"{candidate.reason}; deadline in {hours:.1f} h",
            estimated_cost_usd=candidate.estimated_cost_usd,
            worst_case_usd=candidate.worst_case_usd,
            max_output_tokens=allowance,
        )
        waiting = Waiting(
            model=model,
            item=item,
            entry=BatchEntry(item.custom_id, build_request(job, allowance)),
            scope=CallScope(model.provider, model.name, job.kind, job.tenant),
            key=key,
        )
        return await self._batcher.enqueue(waiting)


class BatchMode:
    """Everything the pipeline needs for provider batches, built once per worker."""

    def __init__(
        self,
        config: Config,
        clients: dict[str, BatchClient],
        router: Router,
        limits: Limits,
        batcher: Batcher,
        follower: BatchFollower,
    ) -> None:
        self.config = config
        self.clients = clients
        self.batcher = batcher
        self.follower = follower
        self.intake = BatchIntake(config, ModeRouter(config, router, limits, batcher), batcher)

    @property
    def active(self) -> bool:
        return self.config.batch.enabled and bool(self.clients)

    async def take(self, job: TaskJob, need: RoutingInput, published_at: datetime) -> bool:
        if not self.config.batch.enabled:
            return False
        if not self.clients:  # still reject a deadline that does not parse
            job_deadline(job, self.config, published_at)
            return False
        return await self.intake.take(job, need, published_at)
