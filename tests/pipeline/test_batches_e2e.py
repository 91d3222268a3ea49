"""Deadline-tolerant work goes through the providers' batch APIs at half price, is accounted
exactly, survives a kill -9 after submission, and leaves jobs without a deadline synchronous."""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.batch_run import (
    TOKENS,
    BatchRun,
    batch_config,
    catalog_dollars,
    jobs,
    sims,
)
from support.frugal_testkit import start_frugal, wait_for
from support.kafka_kit import KafkaKitBroker

from bus.broker import EmbeddedBroker
from providers.sim import SimThread

MODEL_ID = {"gpt-4.1-nano": "gpt-4.1-nano", "gpt-4.1-mini": "gpt-4.1-mini",
            "claude-3-5-haiku": "claude-3-5-haiku-latest", "claude-sonnet-4": "claude-sonnet-4-0"}  # fmt: skip


@dataclass
class Runs:
    batch: BatchRun
    sync: BatchRun


def _drained(tmp: Path, prefix: str, bootstrap: str, deadline: str | None) -> BatchRun:
    with ExitStack() as stack:
        running = {n: stack.enter_context(SimThread(c)) for n, c in sims().items()}
        run = BatchRun(batch_config(tmp, prefix, running), bootstrap)
        run.publish(jobs(600, deadline))
        run.drain()
        run.bills = {name: sim.stats() for name, sim in running.items()}
    return run


@pytest.fixture(scope="module")
def runs(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The same 600 classify jobs, once with deadline 48h and once without."""
    batch = _drained(tmp_path_factory.mktemp("deadline"), "deadline48h", broker.bootstrap, "48h")
    sync = _drained(tmp_path_factory.mktemp("nodeadline"), "nodeadline", broker.bootstrap, None)
    return Runs(batch, sync)


def _bill(run: BatchRun) -> float:
    return float(run.sql("SELECT sum(cost_usd) AS usd FROM usage")[0]["usd"])


def test_every_deadline_job_gets_exactly_one_correct_result(runs: Runs) -> None:
    rows = runs.batch.sql("SELECT job_id, output FROM results_all")
    assert len(rows) == 600 == len({r["job_id"] for r in rows})
    expected = {j["id"]: j["metadata"]["expected"] for j in runs.batch.jobs}
    for r in rows:
        assert json.loads(r["output"]) == expected[r["job_id"]], r
    assert runs.batch.sql("SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0


def test_nine_in_ten_successful_calls_go_through_batches(runs: Runs) -> None:
    rows = runs.batch.sql(
        "SELECT mode, count(*) AS n FROM usage WHERE outcome = 'ok' GROUP BY mode"
    )
    by_mode = {r["mode"]: r["n"] for r in rows}
    print(f"successful calls by mode: {by_mode}")
    assert by_mode.get("batch", 0) >= 0.9 * sum(by_mode.values()), by_mode
    escalated = runs.batch.sql(
        "SELECT count(*) AS n FROM usage WHERE outcome = 'invalid_output' AND mode = 'batch'"
    )[0]["n"]
    assert escalated > 0  # the cheap models' invalid answers escalated, in batch


def test_batch_usage_equals_each_providers_bill(runs: Runs) -> None:
    sums = ", ".join(f"sum({t}) AS {t}" for t in TOKENS)
    rows = runs.batch.sql(
        f"SELECT provider, model, mode, count(*) AS calls, {sums}, sum(cost_usd) AS usd,"
        " count(DISTINCT batch_id) AS batches FROM usage GROUP BY ALL"
    )
    ours = {(r["provider"], MODEL_ID[r["model"]], r["mode"]): r for r in rows}
    billed = {}
    for provider, stats in runs.batch.bills.items():
        for model, bill in stats["models"].items():
            billed[(provider, model, "sync")] = bill
        for model, bill in stats["batch"]["models"].items():
            billed[(provider, model, "batch")] = bill
    assert set(ours) == set(billed)
    for key, bill in billed.items():
        row = ours[key]
        assert row["calls"] == bill["calls"], key
        for token in TOKENS:
            assert row[token] == bill[token], (key, token)
        dollars = catalog_dollars(key[0], key[1], bill, batch=key[2] == "batch")
        assert row["usd"] == pytest.approx(dollars, rel=1e-6), key
    assert all(r["batches"] >= 1 for r in rows if r["mode"] == "batch")


def test_the_deadline_bill_is_at_most_055_of_the_sync_bill(runs: Runs) -> None:
    ratio = _bill(runs.batch) / _bill(runs.sync)
    print(f"batch/sync bill ratio: {ratio:.3f}")
    assert ratio <= 0.55
    assert runs.sync.sql("SELECT count(*) AS n FROM usage WHERE mode = 'batch'")[0]["n"] == 0


def test_no_request_was_submitted_twice(runs: Runs) -> None:
    for stats in runs.batch.bills.values():
        assert stats["batch"]["duplicate_requests"] == 0
        assert stats["batch"]["batches_created"] >= 2  # first tries, then escalations


def test_jobs_without_deadline_among_deadline_jobs_are_answered_synchronously(
    each_broker: EmbeddedBroker | KafkaKitBroker, tmp_path: Path, prefix: str
) -> None:
    """On the embedded broker and on a real Kafka (every topic, batches too, made explicitly)."""
    with ExitStack() as stack:
        running = {n: stack.enter_context(SimThread(c)) for n, c in sims().items()}
        real = isinstance(each_broker, KafkaKitBroker)  # Kafka's minimum session timeout is 6 s
        kafka = {"session_timeout_s": 6} if real else {}
        config = batch_config(tmp_path, prefix, running, kafka=kafka)
        run = BatchRun(config, each_broker.bootstrap)
        mixed = jobs(30, "48h") + jobs(30, None, prefix="now") + jobs(2, "30m", prefix="soon")
        mixed.append({**jobs(1, "next tuesday", prefix="bad")[0]})
        run.publish(mixed)
        run.drain()
    rows = run.sql("SELECT job_id, list(DISTINCT mode) AS modes FROM usage GROUP BY job_id")
    modes = {r["job_id"]: r["modes"] for r in rows}
    assert len(modes) == 62
    for job_id, used in modes.items():
        assert used == (["batch"] if job_id.startswith("ticket") else ["sync"]), job_id
    dead = run.sql("SELECT job_id, error_type, error FROM dead_letters")
    assert [(d["job_id"], d["error_type"]) for d in dead] == [("bad-00000", "invalid_job")]
    assert "next tuesday" in dead[0]["error"]


def test_a_worker_killed_after_submitting_its_batches_is_finished_by_a_restarted_drain(
    broker: EmbeddedBroker, tmp_path: Path, prefix: str
) -> None:
    with ExitStack() as stack:
        running = {
            n: stack.enter_context(SimThread(c)) for n, c in sims(completion_delay_s=3.0).items()
        }
        run = BatchRun(batch_config(tmp_path, prefix, running), broker.bootstrap)
        run.publish(jobs(200, "48h"))
        worker = start_frugal(
            ["worker", "--config", str(run.config), "-v"],
            bootstrap=broker.bootstrap, log=tmp_path / "worker.log",
        )  # fmt: skip
        try:
            wait_for(
                lambda: sum(s.stats()["batch"]["requests_submitted"] for s in running.values())
                >= 200, timeout=60, what="every job submitted in a batch",
            )  # fmt: skip
            time.sleep(0.3)  # let the tickets reach Kafka (a kill before that is the harder case)
        finally:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
        assert all(s.stats()["batch"]["ok"] == 0 for s in running.values())  # none ended yet
        run.drain(timeout=120)
        bills = [s.stats()["batch"] for s in running.values()]
    rows = run.sql("SELECT count(*) AS n, count(DISTINCT job_id) AS jobs FROM results_all")[0]
    assert rows == {"n": 200, "jobs": 200}
    submitted = sum(b["requests_submitted"] for b in bills)
    duplicates = sum(b["duplicate_requests"] for b in bills)
    assert duplicates <= 0.01 * submitted, (duplicates, submitted)
    usage = run.sql("SELECT count(*) AS n, count(DISTINCT job_id || attempt) AS d FROM usage_all")
    assert usage[0]["n"] == usage[0]["d"]  # no call accounted twice


def _long_instruction() -> str:
    rules = [f"Rule {i}: read the whole ticket, weigh the customer's words about money, errors "
             f"and access, and prefer the most specific label that fits." for i in range(120)]  # fmt: skip
    return "\n".join(rules)


def test_a_long_shared_instruction_is_read_from_anthropics_cache_after_the_first_call(
    broker: EmbeddedBroker, tmp_path: Path, prefix: str
) -> None:
    with SimThread(sims()["anthropic"]) as sim:
        config = batch_config(tmp_path, prefix, {"anthropic": sim})
        text = config.read_text().replace("max_concurrency = 64", "max_concurrency = 1")
        config.write_text(text)
        run = BatchRun(config, broker.bootstrap)
        work = jobs(20, None)
        for job in work:
            job.update(providers=["anthropic"], prompt=_long_instruction(), min_tier=1)
        run.publish(work)
        run.drain()
        bill = sim.stats()
    rows = run.sql(
        "SELECT model, input_tokens, cached_input_tokens, cache_write_tokens, cost_usd"
        " FROM usage ORDER BY ts"
    )
    first, later = rows[0], [r for r in rows[1:] if r["model"] == rows[0]["model"]]
    assert first["cache_write_tokens"] > 1024 and first["cached_input_tokens"] == 0
    assert later and all(r["cached_input_tokens"] == first["cache_write_tokens"] for r in later)
    for model, billed in bill["models"].items():
        ours = [r for r in rows if MODEL_ID[r["model"]] == model]
        assert sum(r["cached_input_tokens"] for r in ours) == billed["cached_input_tokens"]
        assert sum(r["cache_write_tokens"] for r in ours) == billed["cache_write_tokens"]
        assert sum(r["cost_usd"] for r in ours) == pytest.approx(
            catalog_dollars("anthropic", model, billed), rel=1e-6
        )
    share = sum(r["cached_input_tokens"] for r in rows) / sum(r["input_tokens"] for r in rows)
    print(f"cached share of input: {share:.3f}")
    assert share > 0.5


def test_the_report_shows_spend_and_saving_by_mode(runs: Runs) -> None:
    done = runs.batch.frugal(["report"])
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if "│ batch │" in ln or "│  batch │" in ln)
    usd, saving = (float(c.strip().lstrip("$")) for c in line.split("│")[4:6])
    assert usd > 0 and saving == pytest.approx(usd, rel=0.05)  # half price: saved as much as paid
    assert "Prompt cache" in done.stdout
