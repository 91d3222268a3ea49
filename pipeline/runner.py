"""Running one job: route, call, validate, escalate; returns the rows that tell its story."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

from pipeline import claims
from pipeline.audit import Auditor
from pipeline.budgets import Budgets, CallScope, Reservation
from pipeline.job_rows import result_row, usage_row, with_costs
from pipeline.limits import CircuitOpen, Limits
from pipeline.prompts import build_request, instructions, output_allowance
from pipeline.retry import Next, RetryPolicy, sleep_unless
from pipeline.routing import INACCURATE, OVER_BUDGET, Candidate, Router, RoutingInput, with_reason
from pipeline.story import JobFailed, JobStory, ParkJob, utcnow
from pipeline.validation import validate_output
from pipeline.vision import image_token_estimate, load_images, unseeable_images
from providers.base import ProviderAdapter
from providers.pricing import ModelPrices, cost_usd
from providers.tokens import estimate_tokens
from schemas.completion import Completion, CompletionRequest, Usage
from schemas.config import Config
from schemas.errors import (
    BudgetExhausted,
    InvalidOutput,
    JobError,
    NoAdequateModel,
    ProviderError,
    RateLimited,
)
from schemas.jobs import TaskJob
from schemas.rows import ResultRow

__all__ = ["JobFailed", "JobRunner", "JobStory", "ParkJob"]

MESSAGE_OVERHEAD_TOKENS = 12  # role markers and framing the tokenizer does not see


class JobRunner:
    def __init__(
        self,
        config: Config,
        adapters: Mapping[str, ProviderAdapter],
        prices: Mapping[str, ModelPrices],
        router: Router,
        limits: Limits,
        budgets: Budgets,
        worker_id: str,
    ) -> None:
        self._config = config
        self._adapters = adapters
        self._prices = prices
        self.router = router
        self.limits = limits
        self.budgets = budgets
        self._retry = RetryPolicy(config.retry)
        self.auditor = Auditor(config, router)
        self.worker_id = worker_id
        # Set while the worker shuts down or hands partitions over: backoffs park instead.
        self.hurry = asyncio.Event()

    def routing_input(self, job: TaskJob) -> RoutingInput:
        tokens = estimate_tokens(instructions(job)) + estimate_tokens(job.input)
        tokens += image_token_estimate(job)
        allowance = output_allowance(job, self._config.route(job.kind).max_output_tokens)
        return RoutingInput(job, tokens + MESSAGE_OVERHEAD_TOKENS, allowance)

    async def run(
        self, job: TaskJob, created_at: datetime | None = None, need: RoutingInput | None = None
    ) -> tuple[ResultRow, JobStory]:
        """The job's result, or JobFailed / JobError / ParkJob carrying its story. `need`:
        the job's routing input when the caller has it already (token counts cost CPU)."""
        story = JobStory.resume(job, created_at or utcnow())
        need = need if need is not None and need.job is job else self.routing_input(job)
        if self.router.too_large_for_every_model(need):
            raise JobError(f"input of ~{need.input_tokens} tokens fits no model's context window")
        if (blind := unseeable_images(self._config.models, job)) is not None:
            raise JobFailed(story, NoAdequateModel(blind))
        skip_providers = story.exhausted_providers
        plan = self.router.plan(need, explain=False)  # reasons only for the models tried
        ranked = len(plan.candidates)
        story.budget_blocked |= plan.budget_blocked
        over_budget = [m for m, why in plan.rejected.items() if why == OVER_BUDGET]
        inaccurate = "".join(
            f"; {m} {why}" for m, why in plan.rejected.items() if why.startswith(INACCURATE)
        )
        for rank, candidate in enumerate(plan.candidates):
            if (
                candidate.provider in skip_providers
                or candidate.model.name in story.skip_models
                or not self.limits.available(candidate.provider)
            ):
                continue
            if self.router.inaccuracy(candidate.model, story.job) is not None:
                continue  # found inaccurate for the kind since the plan was made
            if rank < ranked - 1 and self.auditor.probe_full(candidate.model.name, job.kind):
                continue  # unproven and enough of its answers await their verdicts
            reason = self.router.reason(rank, ranked, candidate, story.job)
            candidate = with_reason(
                candidate, reason + _passed_over(story, over_budget) + inaccurate
            )
            with self._probe(candidate.model.name, job.kind):
                outcome = await self._try_candidate(story, candidate, need, over_budget)
            if isinstance(outcome, ResultRow):
                checked = await self._checked(story, candidate, outcome, need)
                if checked is not None:
                    return checked, story
                continue
            if outcome is Next.NEXT_PROVIDER:
                skip_providers.add(candidate.provider)
        self._park_if_a_provider_may_recover(story, need)
        self._park_if_only_told_to_slow_down(story)
        self._note_unusable(story, need)
        if story.budget_blocked:  # a model that could still answer it has no budget left
            last = f" (last error: {story.last_error.type})" if story.last_error else ""
            error = BudgetExhausted(f"no adequate model has budget left under the caps{last}")
            raise JobFailed(story, error)
        raise JobFailed(story, story.failure())

    def _probe(self, model: str, kind: str) -> AbstractContextManager[None]:
        """Counts an unproven model's answer on the wire (see `Auditor.probe_full`)."""
        if not self.auditor.unproven(model, kind):
            return nullcontext()
        return self.auditor.quality.probing(model, kind)

    async def _checked(
        self, story: JobStory, candidate: Candidate, answer: ResultRow, need: RoutingInput
    ) -> ResultRow | None:
        """The answer after its audit (the audit model's answer when they disagree), or None
        when the model was found inaccurate for the kind while it answered: escalate then."""
        if self.router.inaccuracy(candidate.model, story.job) is not None:
            last = story.usage_rows[-1]
            story.usage_rows[-1] = last.model_copy(update={"outcome": "inaccurate_model"})
            return None
        audit = self.auditor.audit_call(story.job, candidate, need)
        if audit is None:
            return answer
        request = build_request(
            story.job, min(need.output_allowance, audit.model.max_output_tokens)
        )
        with self.auditor.quality.auditing(candidate.model.name, story.job.kind):
            try:
                reference = await self._call(story, audit, request, need.input_tokens)
            except CircuitOpen:
                reference = None
        if not isinstance(reference, ResultRow):  # no verdict: the answer stands, audit billed
            return with_costs(answer, story)
        agreed = self.auditor.judge(answer, reference, candidate.model.name)
        story.usage_rows[-1] = story.usage_rows[-1].model_copy(update={"agreed": agreed})
        if agreed:
            return with_costs(answer, story)
        why = f"{reference.route_reason}: overruled {candidate.model.name}'s {answer.output[:200]}"
        return with_costs(reference.model_copy(update={"route_reason": why}), story)

    def _park_if_a_provider_may_recover(self, story: JobStory, need: RoutingInput) -> None:
        """An adequate provider this job has not exhausted is only paused (breaker open): wait."""
        waiting = {
            m.provider
            for m in self._config.models
            if self.router.inadequacy(m, need) == "provider unhealthy"
            and m.provider not in story.exhausted_providers
            and self.limits[m.provider].disabled_reason is None
        }
        parks = story.prior.parks if story.prior else 0
        decision = self._retry.park_for_unavailable(parks) if waiting else None
        if decision is not None:
            raise ParkJob(decision.delay_s, story)

    def _healthy(self, provider: str) -> bool:
        """Serving other jobs: usable, breaker closed."""
        limiter = self.limits[provider]
        return limiter.disabled_reason is None and limiter.breaker.state == "closed"

    def _note_unusable(self, story: JobStory, need: RoutingInput) -> None:
        """Adequate providers the job dies without trying, and why: known unusable here."""
        for m in self._config.models:
            reason = self.limits[m.provider].disabled_reason
            tried = m.provider in story.providers_tried
            if reason and not tried and self.router.inadequacy(m, need) == "provider unhealthy":
                story.unusable[m.provider] = reason

    def _park_if_only_told_to_slow_down(self, story: JobStory) -> None:
        """Out of candidates because the last one said 429: a batch job waits rather than dies.

        The providers it ran out of are tried afresh when it comes back (except those this
        worker found unusable: bad key, no quota); `retry.max_parks` bounds the waiting.
        """
        if not isinstance(story.last_error, RateLimited) or story.budget_blocked:
            return
        parks = story.prior.parks if story.prior else 0
        if parks >= self._config.retry.max_parks:
            return
        usable = {p for p in story.exhausted_providers if self.limits[p].disabled_reason is None}
        story.exhausted_providers -= usable
        provider_of = {m.name: m.provider for m in self._config.models}
        for name in [m for m in story.retries if provider_of.get(m) in usable]:
            del story.retries[name]
        raise ParkJob(self._retry.backoff_s(parks, story.last_error.retry_after_s), story)

    async def _try_candidate(
        self, story: JobStory, candidate: Candidate, need: RoutingInput, over_budget: list[str]
    ) -> ResultRow | Next:
        model = candidate.model
        request = build_request(story.job, min(need.output_allowance, model.max_output_tokens))
        if story.job.images:
            images = await asyncio.to_thread(load_images, story.job, self._config.storage)
            request = request.model_copy(update={"images": images})
        retries = story.retries.get(model.name, 0)
        while True:
            try:
                result = await self._call(story, candidate, request, need.input_tokens)
            except CircuitOpen:  # the breaker opened while we waited: nothing was sent
                return Next.NEXT_MODEL
            if result is None:  # a cap has no room for it: the next model may fit
                story.budget_blocked = True
                over_budget.append(model.name)
                return Next.NEXT_MODEL
            if isinstance(result, ResultRow):
                return result
            decision = self._retry.decide(result, retries)
            if decision.next is not Next.RETRY and decision.next is not Next.PARK:
                return decision.next
            retries += 1
            story.retries[model.name] = retries
            if decision.next is Next.PARK:
                raise ParkJob(decision.delay_s, story)
            await self._back_off(story, decision.delay_s)

    async def _back_off(self, story: JobStory, delay_s: float) -> None:
        """Wait out a retry backoff in the task, unless the record stops being ours (a revoke or
        shutdown sets `hurry`): then park it for the rest of the wait, at once. A revoke never
        waits for a backoff, and the job still comes back no sooner than it was due."""
        due = time.monotonic() + delay_s
        if not claims.still_ours() or not await sleep_unless(self.hurry, delay_s):
            raise ParkJob(max(0.0, due - time.monotonic()), story)

    async def _call(
        self, story: JobStory, candidate: Candidate, request: CompletionRequest, est_tokens: int
    ) -> ResultRow | ProviderError | None:
        """One call; its worst case is reserved once the provider's limits let it go, so holds
        last only as long as calls on the wire (None: a cap refused it, nothing was sent)."""
        model = candidate.model
        limiter = self.limits[model.provider]
        scope = CallScope(
            model.provider, model.name, story.job.kind, story.job.tenant, story.job.user
        )
        started = time.monotonic()
        try:
            if not claims.still_ours():
                _let_go(story)
            blame = not story.failed_elsewhere(model.provider, self._healthy)
            slot = limiter.slot(est_tokens + request.max_output_tokens, story.job.id, blame)
            async with claims.admitted(slot, nothing_paid=not story.usage_rows) as permit:
                reservation = await self.budgets.reserve(scope, candidate.worst_case_usd)
                if reservation is None:
                    limiter.unused(permit)
                    return None
                if not claims.still_ours():  # the last moment a call can be stopped for free
                    limiter.unused(permit)
                    await self.budgets.settle(reservation, 0.0)
                    _let_go(story)
                story.note_try(candidate)
                call = self._adapters[model.provider].complete(model, request)
                completion = await self._settled(reservation, candidate, call)
                limiter.observe_success(permit, completion)
        except CircuitOpen:
            raise
        except claims.LetGoWhileWaiting:  # revoked while it waited for the limits: park
            _let_go(story)
            raise
        except ProviderError as error:  # the limiter has seen it already
            usage: Usage = error.usage or Usage()
            self._record_call(story, candidate, usage, error.type, started, str(error))
            story.last_error = error
            self._note_failure(story)
            return error
        return self._accept(story, candidate, completion, started)

    async def _settled(
        self, reservation: Reservation, candidate: Candidate, call: Awaitable[Completion]
    ) -> Completion:
        """Await the call, then settle its reservation at what it cost (billed errors too)."""
        spent = 0.0
        try:
            completion = await call
            spent = self._cost(candidate, completion.usage, completion)
            return completion
        except ProviderError as error:
            spent = self._cost(candidate, error.usage or Usage())
            raise
        finally:
            await self.budgets.settle(reservation, spent)

    def _cost(
        self, candidate: Candidate, usage: Usage, completion: Completion | None = None
    ) -> float:
        if completion is not None and completion.provider_cost_usd is not None:
            return completion.provider_cost_usd  # the provider's own bill wins (OpenRouter)
        return cost_usd(self._prices[candidate.model.name], usage)

    def _accept(
        self, story: JobStory, candidate: Candidate, completion: Completion, started: float
    ) -> ResultRow | ProviderError:
        try:
            output = validate_output(story.job, completion.output)
        except InvalidOutput as error:
            error.provider, error.model = candidate.provider, candidate.model.name
            self._record_call(
                story, candidate, completion.usage, error.type, started, str(error), completion
            )
            self._learn(candidate, story.job, completion, valid=False)
            story.last_error = error
            self._note_failure(story)
            return error
        self._record_call(story, candidate, completion.usage, "ok", started, "", completion)
        self._learn(candidate, story.job, completion, valid=True)
        return result_row(story, candidate, output, self.worker_id)

    def _learn(
        self, candidate: Candidate, job: TaskJob, completion: Completion, valid: bool
    ) -> None:
        u = completion.usage
        self.router.stats.record(
            candidate.model.name, job.kind, valid, u.output_tokens, u.input_tokens,
            u.cached_input_tokens, u.cache_write_tokens,
        )  # fmt: skip

    def _note_failure(self, story: JobStory) -> None:
        if story.first_failed_at is None:
            story.first_failed_at = utcnow()

    def _record_call(
        self,
        story: JobStory,
        candidate: Candidate,
        usage: Usage,
        outcome: str,
        started: float,
        error: str,
        completion: Completion | None = None,
    ) -> None:
        cost = self._cost(candidate, usage, completion)
        latency_ms = (time.monotonic() - started) * 1000
        story.usage_rows.append(
            usage_row(story, candidate, usage, outcome, cost, latency_ms, error, self.worker_id)
        )


def _let_go(story: JobStory) -> None:
    """The record is no longer ours: leave it to its next owner, or, if this run already paid
    for calls, park it so that their rows (and the job's story) are kept."""
    if story.usage_rows:
        raise ParkJob(0.0, story)
    raise claims.RecordReleased


def _passed_over(story: JobStory, over_budget: list[str]) -> str:
    """Why the models before this one did not answer: the rest of its route reason."""
    failed = [f"{r.model} {r.outcome}" for r in story.usage_rows if r.outcome != "ok"]
    parts = ([f"after {', '.join(failed[-3:])}"] if failed else []) + (
        [f"{', '.join(over_budget)} over budget"] if over_budget else []
    )
    return f"; {'; '.join(parts)}" if parts else ""
