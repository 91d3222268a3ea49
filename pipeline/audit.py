"""Audits: which answers are re-asked of the route's audit model, and whether the two agree.

A share of answers (`routes.<kind>.audit_rate`, every one while a model is unproven for the
kind) goes again to the audit model on the normal call path (limits, caps, accounting, billed
as `usage.purpose = 'audit'`). The verdict feeds `QualityStats`; when the answers disagree the
job's result is the audit model's.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pipeline.quality import QualityStats, sample_draw
from pipeline.routing import Candidate, Router, RoutingInput
from schemas.config import Config
from schemas.jobs import TaskJob
from schemas.rows import ResultRow

PROBE_AUDITS = 30  # a model's first answers for a kind are all audited, until this many verdicts
# An unproven model answers at most this many of a kind's jobs at a time (answers on the wire
# or being audited): a burst of records is not all bet on a model before its verdicts land.
PROBE_IN_FLIGHT = 10
_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?$")


def normalised(value: Any) -> Any:
    """Comparable form: whitespace collapsed, case folded, numbers (also in text) as floats."""
    if isinstance(value, str):
        text = " ".join(value.split()).casefold()
        if _NUMBER.match(text):
            return round(float(text.replace(",", "")), 6)
        return text
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return round(float(value), 6)
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def answers_agree(kind: str, answer: dict[str, Any], reference: dict[str, Any]) -> bool:
    """classify: the same label; extract (and generate, when audited): every field the same."""
    if kind == "classify":
        return normalised(answer.get("label")) == normalised(reference.get("label"))
    return bool(normalised(answer) == normalised(reference))


class Auditor:
    def __init__(self, config: Config, router: Router) -> None:
        self._config = config
        self._router = router

    @property
    def quality(self) -> QualityStats:
        return self._router.quality

    def rate(self, model: str, kind: str) -> float:
        """`audit_rate`, or every answer while the model is unproven for the kind."""
        base = self._config.route(kind).audit_rate
        if base <= 0:
            return 0.0
        return 1.0 if self.quality.known(model, kind) < PROBE_AUDITS else base

    def unproven(self, model: str, kind: str) -> bool:
        """Audited, not the audit model, and fewer than PROBE_AUDITS verdicts done for the kind."""
        if self._config.route(kind).audit_rate <= 0 or self._router.is_trusted(model, kind):
            return False
        return self.quality.accuracy(model, kind).audited < PROBE_AUDITS

    def probe_full(self, model: str, kind: str) -> bool:
        """An unproven model has PROBE_IN_FLIGHT answers not judged yet: the job goes to the
        next model instead of adding to what rides on the unknown one."""
        unjudged = self.quality.unjudged(model, kind)
        return unjudged >= PROBE_IN_FLIGHT and self.unproven(model, kind)

    def _job_rate(self, job: TaskJob, answered: Candidate) -> tuple[float, str]:
        if self._router.retrial(answered.model, job):
            return 1.0, "retrial below min_accuracy"
        rate = self.rate(answered.model.name, job.kind)
        known = self.quality.known(answered.model.name, job.kind)
        return rate, f"unproven, {known}/{PROBE_AUDITS}" if rate == 1.0 else "audit_rate"

    def audit_call(self, job: TaskJob, answered: Candidate, need: RoutingInput) -> Candidate | None:
        """The audit model as a call to make for this answer, or None when it is not audited."""
        trusted = self._router.trusted_model(job.kind)
        if trusted is None or trusted.name == answered.model.name:
            return None
        rate, why = self._job_rate(job, answered)
        if rate <= 0 or sample_draw(job.id, answered.model.name) >= rate:
            return None
        if self._router.inadequacy(trusted, need) is not None:
            return None  # the audit model cannot take this job (window, providers, health)
        return self._router.audit_candidate(
            trusted,
            need,
            answered.model.name,
            f"audit of {answered.model.name}: {rate:.0%} ({why})",
        )

    def judge(self, answer: ResultRow, reference: ResultRow, answered_by: str) -> bool:
        """Compare the two answers and remember the verdict for the answering model."""
        agreed = answers_agree(answer.kind, json.loads(answer.output), json.loads(reference.output))
        self.quality.record(answered_by, answer.kind, agreed)
        return agreed
