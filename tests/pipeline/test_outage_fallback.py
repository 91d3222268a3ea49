"""Fallback before death: jobs that fail on every provider try every adequate one before dying.

20 of 100 jobs are answered 529/503 by every provider (the simulator singles them out by a
marker in their text) until the providers heal. Those failures come from few distinct jobs,
and after the first provider from jobs that already failed elsewhere, so no breaker opens and
no other job is held up. After healing, `frugal dlq replay` and a drain answer all 100 once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    jsonl,
    lake_query,
    run_frugal,
    sim_providers,
    write_config,
)

from bench.samples import support_tickets
from providers.sim import SimThread
from schemas.config import SimConfig

MARKER = "OUTAGE-HITS-THIS-JOB"
MODELS = default_models()
ADEQUATE_PROVIDERS = {m["provider"] for m in MODELS}  # classify, min_tier 1: every model


def frugal(args: list[str], config: Path, bootstrap: str) -> Any:
    done = run_frugal([*args, "--config", str(config)], bootstrap=bootstrap, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def outage_jobs() -> tuple[list[dict[str, Any]], set[str]]:
    jobs = support_tickets(100, seed=11, prefix="outage")
    hit = {j["id"] for j in jobs[::5]}  # 20 of 100
    for job in jobs:
        if job["id"] in hit:
            job["input"] = f"{job['input']}\n{MARKER}"
    return jobs, hit


def test_every_dead_letter_tried_every_provider_and_a_replay_answers_all_once(
    each_broker: Any, tmp_path: Path, prefix: str
) -> None:
    bootstrap = each_broker.bootstrap
    data = tmp_path / "data"
    jobs, hit = outage_jobs()
    with SimThread(SimConfig(api_key=SIM_KEY, overloaded_matching=MARKER)) as sim:
        base = sim.base_url
        config = write_config(
            tmp_path / "frugal.toml",
            prefix=prefix,
            data_dir=data,
            providers=sim_providers({"openai": base, "anthropic": base, "gemini": base}),
            models=MODELS,
            kafka={"bootstrap": bootstrap, "session_timeout_s": 6},  # Kafka: >= 6 s
            retry={"max_retries": 2, "max_parks": 3},
        )
        published = run_frugal(
            ["publish", "--config", str(config), "-"], bootstrap=bootstrap, stdin=jsonl(jobs)
        )
        assert published.returncode == 0, published.stderr[-3000:]
        frugal(["worker", "--drain"], config, bootstrap)
        dead = lake_query(
            data,
            "SELECT job_id, providers_tried, attempts FROM dead_letters_all WHERE status = 'dead'",
        )

        sim.patch(overloaded_matching=None)  # the providers heal
        frugal(["dlq", "replay"], config, bootstrap)
        frugal(["worker", "--drain"], config, bootstrap)

    assert sorted(job_id for job_id, _, _ in dead) == sorted(hit)  # one dead letter each
    for job_id, providers_tried, attempts in dead:
        assert set(providers_tried) == ADEQUATE_PROVIDERS, (job_id, providers_tried, attempts)
        assert attempts >= len(ADEQUATE_PROVIDERS)
    answered = lake_query(data, "SELECT job_id, count(*) FROM results_all GROUP BY 1")
    assert {job_id for job_id, _ in answered} == {j["id"] for j in jobs}
    assert all(n == 1 for _, n in answered), [a for a in answered if a[1] != 1]
    still_dead = lake_query(
        data,
        "SELECT count(*) FROM (SELECT job_id, arg_max(status, failed_at) AS s "
        "FROM dead_letters_all GROUP BY 1) WHERE s = 'dead'",
    )
    assert still_dead == [(0,)]
