"""Audits: comparing answers, the adaptive audit rate, measured accuracy with bounds, and how
routing uses it (adequacy by `min_accuracy`, order by expected cost per right answer)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from test_routing import config, job, need, order, router

from pipeline.audit import PROBE_AUDITS, PROBE_IN_FLIGHT, Auditor, answers_agree
from pipeline.quality import QualityStats, verdicts_from_lake, wilson
from pipeline.routing import Candidate
from schemas.config import StorageConfig
from schemas.rows import UsageRow
from sinks.model_quality import WINDOW, model_quality_sql
from sinks.parquet import ParquetSink

AUDITED = {"classify": {"audit_rate": 0.05, "audit_model": "big", "min_accuracy": 0.95}}


def quality(model: str, agreed: int, disagreed: int, kind: str = "classify") -> QualityStats:
    stats = QualityStats()
    stats.seed([(model, kind, True)] * agreed + [(model, kind, False)] * disagreed)
    return stats


def test_classify_answers_agree_on_the_same_label_whatever_the_case() -> None:
    assert answers_agree("classify", {"label": "Billing "}, {"label": "billing"})
    assert not answers_agree("classify", {"label": "billing"}, {"label": "bug"})


def test_extract_answers_agree_after_normalising_whitespace_case_and_numbers() -> None:
    answer = {"vendor": "ACME  Supplies\n GmbH", "total": "1,250.50", "n": 3}
    reference = {"vendor": "Acme Supplies GmbH", "total": 1250.5, "n": 3.0}
    assert answers_agree("extract", answer, reference)
    assert not answers_agree("extract", {**answer, "total": 1250.4}, reference)
    assert not answers_agree("extract", {**answer, "vendor": "Acme"}, reference)


def test_wilson_bounds_match_the_model_quality_view() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE u (purpose VARCHAR, audit_of VARCHAR, kind VARCHAR,"
                " agreed BOOLEAN, ts TIMESTAMP)")  # fmt: skip
    verdicts = [True] * 27 + [False] * 3 + [True] * 150
    rows = [("audit", "m", "classify", v, datetime(2026, 1, 1, 0, i // 60, i % 60)) for i,
            v in enumerate(verdicts)]  # fmt: skip
    rows += [("answer", "m", "classify", None, datetime(2026, 1, 2)),
             ("audit", "n", "extract", False, datetime(2026, 1, 2))]  # fmt: skip
    con.executemany("INSERT INTO u VALUES (?, ?, ?, ?, ?)", rows)
    got = {r[0]: r[1:] for r in con.execute(model_quality_sql("u")).fetchall()}
    assert got["m"][1:3] == (WINDOW, WINDOW)  # only the latest WINDOW audits count
    assert got["n"][1:3] == (1, 0)
    lower, upper = wilson(0, 1)
    assert got["n"][4] == pytest.approx(lower) and got["n"][5] == pytest.approx(upper)
    assert wilson(27, 30) == pytest.approx((0.7435, 0.9654), abs=1e-3)


def test_an_unproven_model_is_audited_every_time_then_at_the_audit_rate() -> None:
    cfg = config(routes=AUDITED)
    r = router(cfg)
    auditor = Auditor(cfg, r)
    assert auditor.rate("nano", "classify") == 1.0
    r.quality.seed([("nano", "classify", True)] * (PROBE_AUDITS - 1))
    with r.quality.auditing("nano", "classify"):  # one on the wire counts too
        assert auditor.rate("nano", "classify") == 0.05
    assert auditor.rate("nano", "classify") == 1.0
    assert auditor.rate("nano", "extract") == 0.0  # no audits configured for extract


def test_an_unproven_model_has_at_most_a_few_answers_unjudged_at_a_time() -> None:
    cfg = config(routes=AUDITED)
    r = router(cfg)
    auditor = Auditor(cfg, r)
    with contextlib.ExitStack() as wire:
        for _ in range(PROBE_IN_FLIGHT - 1):
            wire.enter_context(r.quality.probing("nano", "classify"))
        assert not auditor.probe_full("nano", "classify")
        with r.quality.auditing("nano", "classify"):  # answered, its audit on the wire
            assert auditor.probe_full("nano", "classify")
            assert not auditor.probe_full("nano", "extract")  # no audits for extract
            assert not auditor.probe_full("mini", "classify")  # counted per model
        assert not auditor.probe_full("nano", "classify")
        r.quality.seed([("nano", "classify", True)] * PROBE_AUDITS)
        with r.quality.auditing("nano", "classify"):
            assert not auditor.probe_full("nano", "classify")  # proven: no limit
    big = Auditor(cfg, router(cfg))
    with contextlib.ExitStack() as wire:
        for _ in range(PROBE_IN_FLIGHT):
            wire.enter_context(big.quality.probing("big", "classify"))
        assert not big.probe_full("big", "classify")  # the audit model is never on probation


def test_the_audit_model_is_never_audited_and_the_sample_is_fixed_per_job() -> None:
    cfg = config(routes=AUDITED)
    r = router(cfg, quality=quality("nano", PROBE_AUDITS, 0))
    auditor = Auditor(cfg, r)
    plan = {c.model.name: c for c in r.candidates(need(job()))}
    assert auditor.audit_call(job(), plan["big"], need(job())) is None
    picked = [
        i for i in range(2000) if auditor.audit_call(job(id=f"j{i}"), plan["nano"], need(job()))
    ]
    assert 60 <= len(picked) <= 140  # about 5% of 2,000
    again = [
        i for i in range(2000) if auditor.audit_call(job(id=f"j{i}"), plan["nano"], need(job()))
    ]
    assert again == picked
    audit = auditor.audit_call(job(id=f"j{picked[0]}"), plan["nano"], need(job()))
    assert isinstance(audit, Candidate)
    assert (audit.model.name, audit.purpose, audit.audit_of) == ("big", "audit", "nano")


def test_a_model_whose_upper_bound_is_below_min_accuracy_is_not_adequate() -> None:
    r = router(config(routes=AUDITED), quality=quality("nano", 14, 6))
    plan = r.plan(need(job()))
    assert "nano" not in [c.model.name for c in plan.candidates]
    why = plan.rejected["nano"]
    assert why.startswith("inaccurate for classify: 70% right [48%-85%] in 20 audits")
    assert "min_accuracy 95%" in why
    assert "nano" in order(router(config(routes=AUDITED), quality=quality("nano", 20, 0)), job())


def test_a_model_left_out_for_accuracy_is_retried_on_a_few_jobs_every_one_audited() -> None:
    cfg = config(routes=AUDITED)
    r = router(cfg, quality=quality("nano", 14, 6))
    auditor = Auditor(cfg, r)
    retried = [j for j in (job(id=f"j{i}") for i in range(3000)) if order(r, j)[0] == "nano"]
    assert 10 <= len(retried) <= 60  # about 1% of 3,000
    first = r.candidates(need(retried[0]))[0]
    assert "retrial below min_accuracy" in first.reason
    audit = auditor.audit_call(retried[0], first, need(retried[0]))
    assert audit is not None and "retrial" in audit.reason


def test_order_is_by_expected_cost_per_right_answer() -> None:
    # lite costs twice nano; nano right 40% of the time is dearer per right answer.
    routes = {"classify": {"audit_rate": 0.05, "audit_model": "big"}}
    measured = quality("nano", 8, 12)
    measured.seed([("lite", "classify", True)] * 20)
    r = router(config(routes=routes), quality=measured)
    assert order(r, job())[:2] == ["lite", "nano"]
    reason = r.candidates(need(job()))[0].reason
    assert "right (20 audited)" in reason
    assert order(router(), job())[:2] == ["nano", "lite"]  # no audits: accuracy is not weighed


def test_a_restarted_worker_seeds_the_latest_verdicts_from_the_lake(tmp_path: Path) -> None:
    storage = StorageConfig(data_dir=tmp_path)
    sink = ParquetSink(storage, "w")
    rows: list[Any] = [
        UsageRow(
            job_id=f"j{i}",
            attempt=2,
            kind="classify",
            tenant="t",
            provider="a",
            model="big",
            input_tokens=10,
            output_tokens=2,
            cached_input_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            cost_usd=0.0,
            latency_ms=1.0,
            outcome="ok",
            ts=datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC),
            worker="w",
            purpose="audit",
            audit_of="nano",
            agreed=i % 4 != 0,
        )
        for i in range(40)
    ]
    sink.add(rows, on_durable=lambda: None)
    asyncio.run(sink.flush())
    seeded = QualityStats()
    seeded.seed(verdicts_from_lake(storage))
    measured = seeded.accuracy("nano", "classify")
    assert (measured.audited, measured.agreed) == (40, 30)


def test_the_window_keeps_only_the_latest_verdicts() -> None:
    stats = quality("m", WINDOW, 0)
    for _ in range(30):
        stats.record("m", "classify", False)
    measured = stats.accuracy("m", "classify")
    assert (measured.audited, measured.agreed) == (WINDOW, WINDOW - 30)
