"""A job's story: its calls, how it ended, and what it carries through the retry topic."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.retry import carried_error
from pipeline.routing import Candidate
from schemas.errors import BudgetExhausted, NoAdequateModel, ProviderError
from schemas.jobs import ParkedState, TaskJob
from schemas.rows import UsageRow


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class JobStory:
    """Everything that happened to one job: its calls (earlier, parked ones too), how it ended."""

    job: TaskJob
    created_at: datetime
    started: float = field(default_factory=time.monotonic)
    usage_rows: list[UsageRow] = field(default_factory=list)
    providers_tried: list[str] = field(default_factory=list)
    models_tried: list[str] = field(default_factory=list)
    last_error: ProviderError | None = None
    budget_blocked: bool = False
    first_failed_at: datetime | None = None
    exhausted_providers: set[str] = field(default_factory=set)
    retries: dict[str, int] = field(default_factory=dict)  # model -> transient retries done
    skip_models: set[str] = field(default_factory=set)  # answered invalidly in a batch
    prior: ParkedState | None = None  # what the job did before it last waited on the retry topic
    # Adequate providers not tried because they are known unusable (auth, quota), and why.
    unusable: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resume(cls, job: TaskJob, created_at: datetime) -> JobStory:
        prior = job.parked
        if prior is None:
            return cls(job, created_at)
        return cls(
            job,
            created_at,
            providers_tried=list(prior.providers_tried),
            models_tried=list(prior.models_tried),
            last_error=carried_error(prior),
            first_failed_at=prior.first_failed_at,
            exhausted_providers=set(prior.exhausted_providers),
            retries=dict(prior.retries),
            skip_models=set(prior.skip_models),
            prior=prior,
        )

    @property
    def attempts(self) -> int:
        return (self.prior.attempts if self.prior else 0) + len(self.usage_rows)

    @property
    def cost_usd(self) -> float:
        return (self.prior.cost_usd if self.prior else 0.0) + sum(
            r.cost_usd for r in self.usage_rows
        )

    def tokens(self) -> tuple[int, int]:
        """Input and output tokens of every attempt, parked ones included."""
        prior_in, prior_out = (
            (self.prior.input_tokens, self.prior.output_tokens) if self.prior else (0, 0)
        )
        return (
            prior_in + sum(r.input_tokens for r in self.usage_rows),
            prior_out + sum(r.output_tokens for r in self.usage_rows),
        )

    def parked_state(self, delay_s: float) -> ParkedState:
        """The story so far, to travel with the job through the retry topic."""
        input_tokens, output_tokens = self.tokens()
        prior = self.prior
        return ParkedState(
            not_before=time.time() + delay_s,
            parks=(prior.parks if prior else 0) + 1,
            attempts=self.attempts,
            cost_usd=self.cost_usd,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            providers_tried=self.providers_tried,
            models_tried=self.models_tried,
            exhausted_providers=sorted(self.exhausted_providers),
            retries=self.retries,
            skip_models=sorted(self.skip_models),
            first_failed_at=self.first_failed_at,
            last_error_type=self.last_error.type if self.last_error else None,
            last_error=str(self.last_error or "")[:1000],
            source_topic=prior.source_topic if prior else "",
            source_partition=prior.source_partition if prior else -1,
            source_offset=prior.source_offset if prior else -1,
        )

    def failed_elsewhere(self, provider: str, healthy: Callable[[str], bool]) -> bool:
        """Whether another provider, `healthy` for other jobs, already failed this job (429s
        aside): then the job fails everywhere. Failures on a provider in an outage prove nothing."""
        others = {p for p in self.exhausted_providers if p != provider}
        others |= {
            r.provider
            for r in self.usage_rows
            if r.provider != provider and r.outcome not in ("ok", "rate_limited")
        }
        return any(healthy(p) for p in others)

    def note_try(self, candidate: Candidate) -> None:
        if candidate.purpose == "audit":
            return  # an audit is no escalation, and never the reason a job fails
        if candidate.provider not in self.providers_tried:
            self.providers_tried.append(candidate.provider)
        if candidate.model.name not in self.models_tried:
            self.models_tried.append(candidate.model.name)

    def failure(self) -> ProviderError | BudgetExhausted | NoAdequateModel:
        if self.last_error is None and self.budget_blocked:
            return BudgetExhausted("no adequate model has budget left under the configured caps")
        if self.last_error is None:
            return NoAdequateModel(
                "no adequate model is available (all providers unhealthy or excluded)"
            )
        return self.last_error


class JobFailed(Exception):
    def __init__(
        self, story: JobStory, error: ProviderError | BudgetExhausted | NoAdequateModel
    ) -> None:
        super().__init__(str(error))
        self.story = story
        self.error = error


class ParkJob(Exception):
    """The job must wait longer than a worker should hold it: re-queue it on the retry topic."""

    def __init__(self, delay_s: float, story: JobStory) -> None:
        super().__init__(f"parked for {delay_s:.1f} s")
        self.delay_s = delay_s
        self.story = story
