"""What happens to batched requests that fail, expire, are cancelled, or meet a full queue."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from support.batch_run import BatchRun, batch_config, jobs, sims
from support.frugal_testkit import start_frugal, wait_for

from bus.broker import EmbeddedBroker
from providers.sim import SimThread


def _run(
    broker: EmbeddedBroker, tmp: Path, prefix: str, n: int, max_requests: int = 10_000,
    **batch: object,
) -> tuple[BatchRun, dict]:  # fmt: skip
    with ExitStack() as stack:
        running = {n: stack.enter_context(SimThread(c)) for n, c in sims(**batch).items()}
        config = batch_config(tmp, prefix, running, batch={"max_requests": max_requests})
        run = BatchRun(config, broker.bootstrap)
        run.publish(jobs(n, "48h"))
        run.drain()
        listing = run.frugal(["batches"])
        assert listing.returncode == 0, listing.stderr
        bills = {name: sim.stats()["batch"] for name, sim in running.items()}
    return run, {"bills": bills, "listing": listing.stdout}


def test_expired_batches_are_resubmitted_once_then_answered_synchronously(
    broker: EmbeddedBroker, tmp_path: Path, prefix: str
) -> None:
    run, seen = _run(broker, tmp_path, prefix, 20, expire=True)
    assert run.sql("SELECT count(DISTINCT job_id) AS n FROM results")[0]["n"] == 20
    assert {r["mode"] for r in run.sql("SELECT DISTINCT mode FROM usage")} == {"sync"}
    assert sum(b["requests_submitted"] for b in seen["bills"].values()) == 40  # twice, no more
    assert sum(b["ok"] for b in seen["bills"].values()) == 0  # nothing billed for them
    assert seen["listing"].count("expired") >= 4  # two batches per provider


def test_failed_requests_in_a_batch_go_through_the_sync_retry_policy(
    broker: EmbeddedBroker, tmp_path: Path, prefix: str
) -> None:
    """Retried up to `retry.max_retries` per model, then the job is a dead letter, as in sync."""
    run, _ = _run(broker, tmp_path, prefix, 20, fail_rate=0.3)
    answered = run.sql("SELECT count(DISTINCT job_id) AS n FROM results")[0]["n"]
    dead = run.sql("SELECT job_id, error_type, attempts FROM dead_letters")
    assert answered + len(dead) == 20 and answered >= 16
    assert all(d["error_type"] == "server_error" and d["attempts"] >= 4 for d in dead)
    failed = run.sql(
        "SELECT count(*) AS n, sum(cost_usd) AS usd FROM usage"
        " WHERE outcome = 'server_error' AND mode = 'batch'"
    )[0]
    assert failed["n"] > 0 and failed["usd"] == 0


def test_frugal_batches_cancel_stops_a_batch_and_its_jobs_are_still_answered(
    broker: EmbeddedBroker, tmp_path: Path, prefix: str
) -> None:
    with SimThread(sims(completion_delay_s=60)["anthropic"]) as sim:
        run = BatchRun(batch_config(tmp_path, prefix, {"anthropic": sim}), broker.bootstrap)
        work = jobs(10, "48h")
        for job in work:
            job["providers"] = ["anthropic"]
        run.publish(work)
        worker = start_frugal(["worker", "--config", str(run.config)], bootstrap=broker.bootstrap,
                              log=tmp_path / "worker.log")  # fmt: skip
        try:
            wait_for(lambda: sim.stats()["batch"]["batches_created"], timeout=60, what="a batch")
            wait_for(  # the provider's status line shows its open batch
                lambda: "batches=1 batch_queued=0" in (tmp_path / "worker.log").read_text(),
                timeout=30, what="a status line with the open batch",
            )  # fmt: skip
            listings: list[str] = []

            def listed_open() -> int:
                listing = run.frugal(["batches", "--status", "open", "--format", "csv"])
                listings.append(listing.stdout + listing.stderr)
                return listing.stdout.count("msgbatch_")

            try:
                wait_for(listed_open, timeout=60, what="the batch listed as open")
            except AssertionError as timed_out:
                every = run.frugal(["batches"])
                raise AssertionError(
                    f"{timed_out}; last listing: {listings[-1:]}; all: {every.stdout}{every.stderr}"
                ) from None
            batch_id = next(iter(sim.server.batches.batches))
            cancelled = run.frugal(["batches", "cancel", batch_id])
            assert cancelled.returncode == 0, cancelled.stderr
            sim.server.patch(batch={"completion_delay_s": 0.2})
            wait_for(
                lambda: run.frugal(["sql", "SELECT count(*) FROM results"]).stdout.count("10"),
                timeout=60, what="every job answered after the cancel",
            )  # fmt: skip
        finally:
            worker.terminate()
            worker.wait(30)
        assert (
            batch_id in run.frugal(["batches", "--status", "cancelled", "--format", "csv"]).stdout
        )
        bill = sim.stats()["batch"]
        assert bill["batches_created"] >= 2  # the cancelled requests went in a new batch
        assert bill["duplicate_requests"] == 0  # ... under new custom ids: a new submission
