"""Following a submitted batch to its end: poll, read each result, account for it exactly,
and decide what each job does next (answered, escalated, retried, or resubmitted)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from pipeline.batching import UNANSWERED, Batcher
from pipeline.budgets import CallScope
from pipeline.job_rows import result_row
from pipeline.prompts import build_request
from pipeline.retry import Next, RetryPolicy, sleep_unless
from pipeline.routing import Candidate
from pipeline.runner import JobRunner
from pipeline.story import JobStory
from pipeline.validation import validate_output
from providers.batch_base import BatchOutcome, BatchState
from providers.batch_pricing import resolve_batch_prices
from schemas.batches import BatchItem, BatchTicket
from schemas.completion import Usage
from schemas.config import Config
from schemas.errors import InvalidOutput, ProviderError
from schemas.jobs import TaskJob, parse_job
from schemas.rows import Row

log = logging.getLogger("frugal.batches")


class HandedOver(asyncio.CancelledError):
    """The worker is handing its partitions over (or stopping): whoever owns the ticket next
    resumes polling; nothing is written or acked here."""


@dataclass
class BatchEnd:
    rows: list[Row] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)  # job ids now done
    again: list[TaskJob] = field(default_factory=list)  # to the retry topic: next try


class BatchFollower:
    def __init__(self, config: Config, runner: JobRunner, batcher: Batcher) -> None:
        self._config = config
        self._runner = runner
        self._batcher = batcher
        self._retry = RetryPolicy(config.retry)
        self.prices = {
            m.name: resolve_batch_prices(m, config.provider(m.provider))
            for m in config.models
            if m.provider in batcher.clients
        }

    async def follow(self, ticket: BatchTicket, already_done: set[str] | None = None) -> BatchEnd:
        client = self._batcher.clients[ticket.provider]
        self._batcher.open.setdefault(ticket.provider, set()).add(ticket.batch_id)
        state = await self._wait_for_end(ticket)
        model = self._config.model(ticket.model)
        jobs = {i.custom_id: parse_job(i.job) for i in ticket.items}
        requests = {
            i.custom_id: build_request(jobs[i.custom_id], i.max_output_tokens or 64)
            for i in ticket.items
        }
        outcomes = {o.custom_id: o for o in await client.results(state, model, requests)}
        end = BatchEnd()
        for item in ticket.items:
            job = jobs[item.custom_id]
            if already_done and job.id in already_done:
                continue
            outcome = outcomes.get(item.custom_id) or BatchOutcome(item.custom_id)
            await self._settle(ticket, item, job, outcome, end)
        self._batcher.closed(ticket.provider, ticket.batch_id)
        log.info(
            "batch %s %s: %d answered, %d to try again",
            ticket.batch_id, state.provider_status, len(end.answered), len(end.again),
        )  # fmt: skip
        return end

    async def _wait_for_end(self, ticket: BatchTicket) -> BatchState:
        client = self._batcher.clients[ticket.provider]
        while True:
            try:
                state = await client.state(ticket.batch_id)
                if state.final:
                    return state
            except ProviderError as error:  # a poll that failed is tried again at the next tick
                log.warning("polling batch %s: %s", ticket.batch_id, error)
            if not await sleep_unless(self._runner.hurry, self._config.batch.poll_interval_s):
                raise HandedOver()

    async def _settle(
        self, ticket: BatchTicket, item: BatchItem, job: TaskJob, outcome: BatchOutcome,
        end: BatchEnd,
    ) -> None:  # fmt: skip
        model = self._config.model(ticket.model)
        candidate = Candidate(model, item.estimated_cost_usd, item.worst_case_usd, 1.0, item.reason)
        scope = CallScope(model.provider, model.name, job.kind, job.tenant)
        story = JobStory.resume(job, item.created_at)
        started = time.monotonic()
        if outcome.unanswered:  # expired or cancelled: nothing billed, try again
            await self._batcher.settle(item.custom_id, scope, 0.0)
            story.retries[UNANSWERED] = story.retries.get(UNANSWERED, 0) + 1
            end.again.append(self._again(story, job))
            return
        if outcome.completion is not None:
            completion = outcome.completion
            try:
                output = validate_output(job, completion.output)
            except InvalidOutput as error:
                self._record(
                    story, candidate, completion.usage, error.type, started, str(error), ticket
                )
                story.skip_models.add(model.name)
                self._runner._learn(candidate, job, completion, valid=False)
            else:
                self._record(story, candidate, completion.usage, "ok", started, "", ticket)
                self._runner._learn(candidate, job, completion, valid=True)
                end.rows.extend(story.usage_rows)
                end.rows.append(result_row(story, candidate, output, self._runner.worker_id))
                end.answered.append(job.id)
                await self._batcher.settle(item.custom_id, scope, story.usage_rows[-1].cost_usd)
                return
        else:
            failure = outcome.error
            assert failure is not None
            usage = failure.usage or Usage()
            self._record(story, candidate, usage, failure.type, started, str(failure), ticket)
            self._next_after_error(story, model.name, failure)
        story.last_error = getattr(outcome, "error", None) or story.last_error
        await self._batcher.settle(item.custom_id, scope, story.usage_rows[-1].cost_usd)
        end.rows.extend(story.usage_rows)
        end.again.append(self._again(story, job))

    def _next_after_error(self, story: JobStory, model: str, error: ProviderError) -> None:
        retries = story.retries.get(model, 0)
        decision = self._retry.decide(error, retries)
        story.last_error = error
        if decision.next is Next.NEXT_PROVIDER:
            story.exhausted_providers.add(error.provider)
        elif decision.next is Next.NEXT_MODEL:
            story.skip_models.add(model)
        else:
            story.retries[model] = retries + 1

    def _record(
        self, story: JobStory, candidate: Candidate, usage: Usage, outcome: str, started: float,
        error: str, ticket: BatchTicket,
    ) -> None:  # fmt: skip
        """The usage row, as for a sync call, at the batch price and with its batch id."""
        story.note_try(candidate)
        self._runner._record_call(story, candidate, usage, outcome, started, error)
        row = story.usage_rows[-1]
        discount = self._config.provider(candidate.provider).batch_discount
        story.usage_rows[-1] = row.model_copy(
            update={
                "mode": "batch",
                "batch_id": ticket.batch_id,
                "cost_usd": row.cost_usd * discount,
            }
        )

    @staticmethod
    def _again(story: JobStory, job: TaskJob) -> TaskJob:
        """The job with its story so far, to go through routing again straight away."""
        parks = story.prior.parks if story.prior else 0
        state = story.parked_state(0.0).model_copy(update={"parks": parks})
        return job.model_copy(update={"parked": state})
