"""Running one job: route, call, validate, escalate; returns the rows that tell its story."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.budgets import Budgets, CallScope
from pipeline.limits import Limits
from pipeline.prompts import build_request, instructions, output_allowance
from pipeline.retry import Next, RetryPolicy
from pipeline.routing import Candidate, Router, RoutingInput
from pipeline.validation import validate_output
from providers.base import ProviderAdapter
from providers.pricing import ModelPrices, cost_usd
from providers.tokens import estimate_tokens
from schemas.completion import Completion, CompletionRequest, Usage
from schemas.config import Config
from schemas.errors import BudgetExhausted, InvalidOutput, JobError, ProviderError
from schemas.jobs import TaskJob
from schemas.rows import ResultRow, UsageRow

MESSAGE_OVERHEAD_TOKENS = 12  # role markers and framing the tokenizer does not see


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ParkJob(Exception):
    """The job must wait longer than a worker should hold it: re-queue it on the retry topic."""

    delay_s: float
    error: ProviderError


@dataclass
class JobStory:
    """Everything that happened to one job: its calls, and how it ended."""

    job: TaskJob
    created_at: datetime
    started: float = field(default_factory=time.monotonic)
    usage_rows: list[UsageRow] = field(default_factory=list)
    providers_tried: list[str] = field(default_factory=list)
    models_tried: list[str] = field(default_factory=list)
    last_error: ProviderError | None = None
    budget_blocked: bool = False
    first_failed_at: datetime | None = None

    @property
    def attempts(self) -> int:
        return len(self.usage_rows)

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.usage_rows)

    def note_try(self, candidate: Candidate) -> None:
        if candidate.provider not in self.providers_tried:
            self.providers_tried.append(candidate.provider)
        if candidate.model.name not in self.models_tried:
            self.models_tried.append(candidate.model.name)

    def failure(self) -> ProviderError | BudgetExhausted:
        if self.last_error is None and self.budget_blocked:
            return BudgetExhausted("no adequate model has budget left under the configured caps")
        if self.last_error is None:
            return ProviderError(
                "no adequate model is available (all providers unhealthy or excluded)"
            )
        return self.last_error


class JobFailed(Exception):
    def __init__(self, story: JobStory, error: ProviderError | BudgetExhausted) -> None:
        super().__init__(str(error))
        self.story = story
        self.error = error


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
        self.worker_id = worker_id

    def routing_input(self, job: TaskJob) -> RoutingInput:
        tokens = estimate_tokens(instructions(job)) + estimate_tokens(job.input)
        allowance = output_allowance(job, self._config.route(job.kind).max_output_tokens)
        return RoutingInput(job, tokens + MESSAGE_OVERHEAD_TOKENS, allowance)

    async def run(
        self, job: TaskJob, created_at: datetime | None = None
    ) -> tuple[ResultRow, JobStory]:
        """The job's result, or JobFailed / JobError / ParkJob carrying its story."""
        story = JobStory(job, created_at or utcnow())
        need = self.routing_input(job)
        if self.router.too_large_for_every_model(need):
            raise JobError(f"input of ~{need.input_tokens} tokens fits no model's context window")
        skip_providers: set[str] = set()
        for candidate in self.router.candidates(need):
            if candidate.provider in skip_providers or not self.limits.available(
                candidate.provider
            ):
                continue
            outcome = await self._try_candidate(story, candidate, need)
            if isinstance(outcome, ResultRow):
                return outcome, story
            if outcome is Next.NEXT_PROVIDER:
                skip_providers.add(candidate.provider)
        raise JobFailed(story, story.failure())

    async def _try_candidate(
        self, story: JobStory, candidate: Candidate, need: RoutingInput
    ) -> ResultRow | Next:
        model = candidate.model
        scope = CallScope(model.provider, model.name, story.job.kind, story.job.tenant)
        request = build_request(story.job, min(need.output_allowance, model.max_output_tokens))
        retries = 0
        while True:
            reservation = self.budgets.reserve(scope, candidate.worst_case_usd)
            if reservation is None:
                story.budget_blocked = True
                return Next.NEXT_MODEL
            story.note_try(candidate)
            try:
                result = await self._call(story, candidate, request, need.input_tokens)
            finally:
                spent = story.usage_rows[-1].cost_usd if story.usage_rows else 0.0
                self.budgets.settle(reservation, spent)
            if isinstance(result, ResultRow):
                return result
            decision = self._retry.decide(result, retries)
            if decision.next is Next.PARK:
                raise ParkJob(decision.delay_s, result)
            if decision.next is not Next.RETRY:
                return decision.next
            retries += 1
            await asyncio.sleep(decision.delay_s)

    async def _call(
        self, story: JobStory, candidate: Candidate, request: CompletionRequest, est_tokens: int
    ) -> ResultRow | ProviderError:
        model = candidate.model
        limiter = self.limits[model.provider]
        started = time.monotonic()
        try:
            async with limiter.slot(est_tokens + request.max_output_tokens):
                completion = await self._adapters[model.provider].complete(model, request)
        except ProviderError as error:
            limiter.observe_error(error)
            usage: Usage = getattr(error, "usage", None) or Usage()
            self._record_call(story, candidate, usage, error.type, started, str(error))
            story.last_error = error
            self._note_failure(story)
            return error
        limiter.observe_success(completion, est_tokens)
        return self._accept(story, candidate, completion, started)

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
            self.router.stats.record(
                candidate.model.name, story.job.kind, False, completion.usage.output_tokens
            )
            story.last_error = error
            self._note_failure(story)
            return error
        self._record_call(story, candidate, completion.usage, "ok", started, "", completion)
        self.router.stats.record(
            candidate.model.name, story.job.kind, True, completion.usage.output_tokens
        )
        return self._result_row(story, candidate, output)

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
        cost = cost_usd(self._prices[candidate.model.name], usage)
        if completion is not None and completion.provider_cost_usd is not None:
            cost = completion.provider_cost_usd  # the provider's own bill wins (OpenRouter)
        job = story.job
        story.usage_rows.append(
            UsageRow(
                job_id=job.id,
                attempt=story.attempts + 1,
                kind=job.kind,
                tenant=job.tenant,
                provider=candidate.provider,
                model=candidate.model.name,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost_usd=cost,
                latency_ms=(time.monotonic() - started) * 1000,
                outcome=outcome,
                ts=utcnow(),
                worker=self.worker_id,
                usage_estimated=usage.estimated,
                route_reason=candidate.reason,
                estimated_cost_usd=candidate.estimated_cost_usd,
                error=error[:500],
            )
        )

    def _result_row(
        self, story: JobStory, candidate: Candidate, output: dict[str, object]
    ) -> ResultRow:
        job = story.job
        rows = story.usage_rows
        return ResultRow(
            job_id=job.id,
            kind=job.kind,
            tenant=job.tenant,
            doc_id=job.doc_id,
            output=json.dumps(output, ensure_ascii=False),
            provider=candidate.provider,
            model=candidate.model.name,
            attempts=len(rows),
            input_tokens=sum(r.input_tokens for r in rows),
            output_tokens=sum(r.output_tokens for r in rows),
            cost_usd=story.cost_usd,
            latency_ms=(time.monotonic() - story.started) * 1000,
            created_at=story.created_at,
            completed_at=utcnow(),
            escalations=len(story.models_tried) - 1,
            route_reason=candidate.reason,
            worker=self.worker_id,
        )
