"""Which models are adequate for a job, and in which order to try them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from pipeline.quality import QualityStats, sample_draw, trusted_model
from pipeline.validity import PRIOR_VALID, PROMPT_MODE_PRIOR, ValidityStats
from pipeline.vision import lacks_vision
from providers.pricing import ModelPrices, tokens_cost_usd
from providers.structured import StructuredMode, structured_mode
from schemas.config import Config, ModelConfig, RouteConfig
from schemas.jobs import TaskJob

__all__ = ["Candidate", "RoutePlan", "Router", "RoutingInput", "ValidityStats"]

# The worst case reserves the estimated input plus this margin: provider tokenizers differ
# from ours, and a cap must hold even when they count more.
INPUT_MARGIN = 1.25
OVER_BUDGET = "over budget"
INACCURATE = "inaccurate for"  # how a reason to leave a model out for its accuracy begins
RETRIAL_RATE = 0.01  # share of jobs a model left out for its accuracy still answers, audited

BudgetCheck = Callable[[ModelConfig, TaskJob, float], bool]


@dataclass(frozen=True)
class Candidate:
    model: ModelConfig
    estimated_cost_usd: float  # expected cost of one attempt on this job
    worst_case_usd: float  # the full output allowance: what the budget reserves
    valid_rate: float  # learned share of valid answers for this kind
    reason: str
    accuracy: float = 1.0  # measured share of right answers (agreeing with the audit model)
    purpose: str = "answer"  # answer | audit
    audit_of: str = ""  # audit calls: the model whose answer is checked

    @property
    def provider(self) -> str:
        return self.model.provider

    @property
    def cost_per_answer(self) -> float:
        """Expected spend on this model per right answer (valid x accurate): what the order
        minimises."""
        return self.estimated_cost_usd / max(self.valid_rate * self.accuracy, 1e-3)


@dataclass(frozen=True)
class RoutingInput:
    job: TaskJob
    input_tokens: int  # estimated, instructions included
    output_allowance: int


@dataclass
class RoutePlan:
    """Adequate models in the order to try them, and why every other model was left out."""

    candidates: list[Candidate]
    rejected: dict[str, str] = field(default_factory=dict)  # model name -> reason

    @property
    def budget_blocked(self) -> bool:
        return OVER_BUDGET in self.rejected.values()

    def expected_cost_usd(self) -> float:
        """Expected bill of the job along this order, escalations included."""
        total, reach = 0.0, 1.0
        for c in self.candidates:
            total += reach * c.estimated_cost_usd
            reach *= 1 - c.valid_rate
        return total


class Router:
    """Adequacy (window, tier, capabilities, providers, budget, price cap) and order."""

    def __init__(
        self,
        config: Config,
        prices: Mapping[str, ModelPrices],
        stats: ValidityStats | None = None,
        provider_available: Callable[[str], bool] | None = None,
        within_budget: BudgetCheck | None = None,
        quality: QualityStats | None = None,
    ) -> None:
        self._config = config
        self._prices = prices
        self.stats = stats or ValidityStats()
        self.quality = quality or QualityStats()
        self._trusted = {
            k: trusted_model(config, prices, k) for k in ("classify", "extract", "generate")
        }
        self._available = provider_available or (lambda _name: True)
        self._modes: dict[str, StructuredMode] = {}  # model name -> structured-output mode
        self._within_budget = within_budget

    def fits(self, model: ModelConfig, need: RoutingInput) -> bool:
        allowance = min(need.output_allowance, model.max_output_tokens)
        return need.input_tokens + allowance <= model.context_window

    def inadequacy(self, model: ModelConfig, need: RoutingInput) -> str | None:
        """Why `model` cannot take this job (budget and price aside), or None when it can."""
        return self._inadequacy(model, need, self._config.route(need.job.kind))

    def _inadequacy(self, model: ModelConfig, need: RoutingInput, route: RouteConfig) -> str | None:
        job = need.job
        min_tier = job.min_tier or route.min_tier
        if model.tier < min_tier:
            return f"tier {model.tier} < {min_tier}"
        allowed = job.providers or route.providers
        if allowed is not None and model.provider not in allowed:
            return "provider not allowed"
        if model.provider in job.exclude_providers:
            return "provider excluded"
        if lacks_vision(model, job):
            return "no vision"
        if not self.fits(model, need):
            return "context window"
        if not self._available(model.provider):
            return "provider unhealthy"
        return self.inaccuracy(model, job)

    def trusted_model(self, kind: str) -> ModelConfig | None:
        """The route's audit model: trusted, never audited, right by definition."""
        return self._trusted.get(kind)

    def is_trusted(self, model_name: str, kind: str) -> bool:
        trusted = self._trusted.get(kind)
        return trusted is not None and trusted.name == model_name

    def measures_quality(self, kind: str) -> bool:
        return _measures_quality(self._config.route(kind))

    def accuracy(self, model: ModelConfig, kind: str) -> float:
        if not self.measures_quality(kind) or self.is_trusted(model.name, kind):
            return 1.0
        return self.quality.expected(model.name, kind)

    def inaccuracy(self, model: ModelConfig, job: TaskJob) -> str | None:
        """Why the model is not adequate for the job's kind by its measured accuracy, or None
        (also for the jobs it is retried on)."""
        why = self._below_min_accuracy(model, job.kind)
        return None if why is None or self.retrial(model, job) else why

    def retrial(self, model: ModelConfig, job: TaskJob) -> bool:
        """A model left out for its accuracy still answers a small fixed share of jobs, every
        one audited, so it can earn its way back (a window only forgets with new audits)."""
        if self._config.route(job.kind).min_accuracy is None:
            return False
        if sample_draw(job.id, f"retrial/{model.name}") >= RETRIAL_RATE:
            return False
        return self._below_min_accuracy(model, job.kind) is not None

    def _below_min_accuracy(self, model: ModelConfig, kind: str) -> str | None:
        floor = self._config.route(kind).min_accuracy
        if floor is None or self.is_trusted(model.name, kind):
            return None
        measured = self.quality.accuracy(model.name, kind)
        if not measured.audited or measured.bounds[1] >= floor:
            return None
        return f"{INACCURATE} {kind}: {measured.describe()}, upper bound < min_accuracy {floor:.0%}"

    def structured_mode(self, model: ModelConfig) -> StructuredMode:
        """How the output schema reaches the model, as its adapter will send it (worked out
        once per model: the model and its provider's protocol are configuration)."""
        mode = self._modes.get(model.name)
        if mode is None:
            protocols = {p.name: p.kind for p in self._config.providers}
            mode = structured_mode(model, protocols.get(model.provider, "openai"))
            self._modes[model.name] = mode
        return mode

    def price(self, model: ModelConfig, input_tokens: int, output_tokens: int) -> float:
        # Expected cache reads (0.1x input on Anthropic) and writes (1.25x), as learned.
        cached = int(input_tokens * self.stats.cached_share(model.name))
        written = int(input_tokens * self.stats.cache_write_share(model.name))
        return tokens_cost_usd(
            self._prices[model.name], input_tokens, output_tokens, cached, written
        )

    def worst_case(self, model: ModelConfig, need: RoutingInput) -> float:
        allowance = min(need.output_allowance, model.max_output_tokens)
        worst_input = int(need.input_tokens * INPUT_MARGIN) + 1
        return tokens_cost_usd(self._prices[model.name], worst_input, allowance)

    def _candidate(
        self, model: ModelConfig, need: RoutingInput, measured: bool = True
    ) -> Candidate:
        """`measured=False`: the route measures no quality, so every model counts as right."""
        kind = need.job.kind
        allowance = min(need.output_allowance, model.max_output_tokens)
        expected_out = self.stats.expected_output(model.name, kind, allowance)
        prior = PRIOR_VALID if self.structured_mode(model) != "prompt" else PROMPT_MODE_PRIOR
        return Candidate(
            model,
            self.price(model, need.input_tokens, expected_out),
            self.worst_case(model, need),
            self.stats.valid_rate(model.name, kind, prior),
            "",
            self.accuracy(model, kind) if measured else 1.0,
        )

    def audit_candidate(
        self, model: ModelConfig, need: RoutingInput, audit_of: str, reason: str
    ) -> Candidate:
        return replace(
            self._candidate(model, need), purpose="audit", audit_of=audit_of, reason=reason
        )

    def plan(self, need: RoutingInput, explain: bool = True) -> RoutePlan:
        """Adequate models, cheapest expected cost per valid answer first. `explain=False`
        leaves the reasons empty for the caller to ask `reason` for the candidates it tries
        (a job is usually answered by its first: the others' reasons are never read)."""
        found: list[Candidate] = []
        rejected: dict[str, str] = {}
        route = self._config.route(need.job.kind)  # looked up once: plan runs for every job
        measured = _measures_quality(route)
        for model in self._config.models:
            why = self._inadequacy(model, need, route)
            candidate = self._candidate(model, need, measured) if why is None else None
            why = why or self._unaffordable(candidate, need.job, route)
            if candidate is None or why is not None:
                rejected[model.name] = why or "inadequate"
                continue
            found.append(candidate)
        ordered = self._ordered(found, need.job, route)
        if explain:
            n = len(ordered)
            ordered = [
                with_reason(c, self.reason(i, n, c, need.job)) for i, c in enumerate(ordered)
            ]
        return RoutePlan(ordered, rejected)

    def _unaffordable(
        self, candidate: Candidate | None, job: TaskJob, route: RouteConfig
    ) -> str | None:
        """Why the job's price cap or the budgets rule this candidate out, or None."""
        if candidate is None:
            return None
        max_cost = job.max_cost_usd or route.max_cost_usd
        if max_cost is not None and candidate.estimated_cost_usd > max_cost:
            return f"est ${candidate.estimated_cost_usd:.6f} > max_cost_usd"
        check = self._within_budget
        if check is not None and not check(candidate.model, job, candidate.worst_case_usd):
            return OVER_BUDGET
        return None

    def candidates(self, need: RoutingInput) -> list[Candidate]:
        return self.plan(need).candidates

    def _ordered(self, found: list[Candidate], job: TaskJob, route: RouteConfig) -> list[Candidate]:
        # Trying models with cost c and success chance p in order of c/p minimises the
        # expected bill including escalations; preferred providers win ties.
        prefer = route.prefer
        rank = {name: i for i, name in enumerate(prefer)}
        avoid = set(job.avoid_providers)
        found.sort(
            key=lambda c: (
                c.provider in avoid,
                c.cost_per_answer,
                rank.get(c.provider, len(rank)),
                c.model.tier,
            )
        )
        return found

    def reason(self, i: int, n: int, c: Candidate, job: TaskJob) -> str:
        """Why `c` is tried where it is: rank `i` (from 0) of the `n` adequate models."""
        seen = self.stats.seen(c.model.name, job.kind)
        learned = f"{seen} seen" if seen else "prior"
        extras: list[str] = [self.structured_mode(c.model)]
        if self.retrial(c.model, job):
            extras.append("retrial below min_accuracy: audited")
        if c.provider in job.avoid_providers:
            extras.append("avoided provider: last resort")
        right = ""
        if self.measures_quality(job.kind):
            audited = self.quality.accuracy(c.model.name, job.kind).audited
            right = f", {c.accuracy:.0%} right ({audited} audited)"
        return (
            f"rank {i + 1}/{n}: ${c.estimated_cost_usd:.7f}/try, {c.valid_rate:.0%} valid "
            f"({job.kind}, {learned}){right} = ${c.cost_per_answer:.7f}/answer; "
            f"{', '.join(extras)}"
        )

    def too_large_for_every_model(self, need: RoutingInput) -> bool:
        return not any(self.fits(m, need) for m in self._config.models)


def _measures_quality(route: RouteConfig) -> bool:
    """The route audits answers or asks for a minimum accuracy: models are not all right."""
    return route.audit_rate > 0 or route.min_accuracy is not None


def with_reason(c: Candidate, reason: str) -> Candidate:
    """`replace(c, reason=reason)` without its per-call field introspection (hot path)."""
    return Candidate(
        c.model, c.estimated_cost_usd, c.worst_case_usd, c.valid_rate, reason, c.accuracy,
        c.purpose, c.audit_of,
    )  # fmt: skip
