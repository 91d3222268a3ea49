"""Which models are adequate for a job, and in which order to try them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from providers.pricing import ModelPrices, cost_usd
from schemas.completion import Usage
from schemas.config import Config, ModelConfig
from schemas.jobs import TaskJob

STRUCTURED_CAPABILITIES = frozenset({"json_schema", "tools", "json_object"})
PRIOR_VALID, PRIOR_WEIGHT = 0.9, 4.0  # optimistic prior: a model is assumed mostly right
EXPECTED_OUTPUT = {"classify": 8, "extract": 120, "generate": 300}


@dataclass(frozen=True)
class Candidate:
    model: ModelConfig
    estimated_cost_usd: float  # expected cost of one attempt on this job
    worst_case_usd: float  # the full output allowance: what the budget reserves
    valid_rate: float  # learned share of valid answers for this kind
    reason: str

    @property
    def provider(self) -> str:
        return self.model.provider


@dataclass
class ValidityStats:
    """How often each model's answers validated, per kind; seeded from `usage`, then live."""

    counts: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # -> [valid, total]
    output_tokens: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # -> [sum, n]

    def record(self, model: str, kind: str, valid: bool, output_tokens: int) -> None:
        c = self.counts.setdefault((model, kind), [0, 0])
        c[0] += int(valid)
        c[1] += 1
        o = self.output_tokens.setdefault((model, kind), [0, 0])
        o[0] += output_tokens
        o[1] += 1

    def valid_rate(self, model: str, kind: str) -> float:
        valid, total = self.counts.get((model, kind), (0, 0))
        return (valid + PRIOR_VALID * PRIOR_WEIGHT) / (total + PRIOR_WEIGHT)

    def expected_output(self, model: str, kind: str, allowance: int) -> int:
        total, n = self.output_tokens.get((model, kind), (0, 0))
        guess = total / n if n else EXPECTED_OUTPUT.get(kind, 256)
        return int(min(allowance, max(1.0, guess)))


@dataclass(frozen=True)
class RoutingInput:
    job: TaskJob
    input_tokens: int  # estimated, instructions included
    output_allowance: int


class Router:
    """Adequacy (window, tier, capabilities, providers, price cap) and order (expected cost)."""

    def __init__(
        self,
        config: Config,
        prices: Mapping[str, ModelPrices],
        stats: ValidityStats | None = None,
        provider_available: Callable[[str], bool] | None = None,
    ) -> None:
        self._config = config
        self._prices = prices
        self.stats = stats or ValidityStats()
        self._available = provider_available or (lambda _name: True)

    def min_tier(self, job: TaskJob) -> int:
        return job.min_tier or self._config.route(job.kind).min_tier

    def allowed_providers(self, job: TaskJob) -> set[str] | None:
        allowed = job.providers or self._config.route(job.kind).providers
        return set(allowed) if allowed is not None else None

    def fits(self, model: ModelConfig, need: RoutingInput) -> bool:
        allowance = min(need.output_allowance, model.max_output_tokens)
        return need.input_tokens + allowance <= model.context_window

    def inadequacy(self, model: ModelConfig, need: RoutingInput) -> str | None:
        """Why `model` cannot take this job, or None when it is adequate."""
        job = need.job
        allowed = self.allowed_providers(job)
        if model.tier < self.min_tier(job):
            return "tier"
        if allowed is not None and model.provider not in allowed:
            return "provider not allowed"
        if model.provider in job.exclude_providers:
            return "provider excluded"
        if not self.fits(model, need):
            return "context window"
        if not self._available(model.provider):
            return "provider unhealthy"
        return None

    def price(self, model: ModelConfig, input_tokens: int, output_tokens: int) -> float:
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        return cost_usd(self._prices[model.name], usage)

    def candidates(self, need: RoutingInput) -> list[Candidate]:
        """Adequate models, cheapest expected cost per valid answer first."""
        job, out = need.job, need.output_allowance
        max_cost = job.max_cost_usd or self._config.route(job.kind).max_cost_usd
        found: list[Candidate] = []
        for model in self._config.models:
            if self.inadequacy(model, need) is not None:
                continue
            allowance = min(out, model.max_output_tokens)
            expected_out = self.stats.expected_output(model.name, job.kind, allowance)
            estimate = self.price(model, need.input_tokens, expected_out)
            if max_cost is not None and estimate > max_cost:
                continue
            worst = self.price(model, need.input_tokens, allowance)
            valid = self.stats.valid_rate(model.name, job.kind)
            found.append(Candidate(model, estimate, worst, valid, ""))
        return self._ordered(found, job)

    def _ordered(self, found: list[Candidate], job: TaskJob) -> list[Candidate]:
        # Trying models with cost c and success chance p in order of c/p minimises the
        # expected bill including escalations; preferred providers win ties.
        prefer = self._config.route(job.kind).prefer
        rank = {name: i for i, name in enumerate(prefer)}
        avoid = set(job.avoid_providers)
        found.sort(
            key=lambda c: (
                c.provider in avoid,
                c.estimated_cost_usd / max(c.valid_rate, 1e-3),
                rank.get(c.provider, len(rank)),
                c.model.tier,
            )
        )
        return [
            Candidate(
                c.model,
                c.estimated_cost_usd,
                c.worst_case_usd,
                c.valid_rate,
                f"rank {i + 1}/{len(found)}: est ${c.estimated_cost_usd:.6f}, "
                f"valid {c.valid_rate:.0%} for {job.kind}",
            )
            for i, c in enumerate(found)
        ]

    def too_large_for_every_model(self, need: RoutingInput) -> bool:
        return not any(self.fits(m, need) for m in self._config.models)
