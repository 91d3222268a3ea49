"""A job never dies while an adequate provider it has not tried is only paused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from support.frugal_testkit import SIM_KEY, default_models, sim_providers

from bench.samples import support_tickets
from pipeline.app import Pipeline
from pipeline.breaker import BREAKER_MIN_JOBS
from pipeline.dead_letters import RecordOrigin, for_job
from pipeline.runner import JobFailed, ParkJob
from providers.sim import SimThread
from schemas.config import Config, SimConfig
from schemas.jobs import parse_job

MARKER = "FAILS-ON-EVERY-PROVIDER"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(SimConfig(api_key=SIM_KEY, overloaded_matching=MARKER)) as running:
        yield running


def pipeline_for(sim: SimThread, tmp: Any) -> Pipeline:
    base = sim.base_url
    providers = sim_providers({"openai": base, "anthropic": base, "gemini": base})
    for provider in providers:
        provider["api_key"] = SIM_KEY
    config = Config.model_validate(
        {
            "providers": providers,
            "models": default_models(),
            "storage": {"data_dir": str(tmp)},
            "retry": {"base_delay_s": 0.01, "max_delay_s": 0.05, "max_retries": 1},
        }
    )
    return Pipeline(config, "127.0.0.1:1", worker_id="test")


def failing_job() -> Any:
    ticket = support_tickets(1, prefix="everywhere")[0]
    return parse_job({**ticket, "input": f"{ticket['input']}\n{MARKER}"})


def open_breaker(pipeline: Pipeline, provider: str) -> None:
    for i in range(BREAKER_MIN_JOBS):
        pipeline.limits[provider].breaker.failure(f"other-job-{i}")
    assert not pipeline.limits.available(provider)


async def close(pipeline: Pipeline) -> None:
    await pipeline.producer.stop()
    for adapter in pipeline.adapters.values():
        await adapter.aclose()


async def test_a_job_parks_while_its_untried_providers_have_an_open_breaker(
    sim: SimThread, tmp_path: Any
) -> None:
    pipeline = pipeline_for(sim, tmp_path)
    try:
        for provider in ("anthropic", "gemini"):
            open_breaker(pipeline, provider)
        job = failing_job()
        with pytest.raises(ParkJob) as parked:
            await pipeline.runner.run(job)
        assert parked.value.story.providers_tried == ["openai"]
        for provider in ("anthropic", "gemini"):  # they recover
            pipeline.limits[provider].breaker.success()
        state = parked.value.story.parked_state(0)
        with pytest.raises(JobFailed) as failed:
            await pipeline.runner.run(job.model_copy(update={"parked": state}))
        assert sorted(failed.value.story.providers_tried) == ["anthropic", "gemini", "openai"]
    finally:
        await close(pipeline)


async def test_a_provider_known_unusable_is_skipped_and_the_dead_letter_says_why(
    sim: SimThread, tmp_path: Any
) -> None:
    pipeline = pipeline_for(sim, tmp_path)
    try:
        pipeline.limits["anthropic"].disabled_reason = "auth"
        job = failing_job()
        with pytest.raises(JobFailed) as failed:
            await pipeline.runner.run(job)
        story = failed.value.story
        assert sorted(story.providers_tried) == ["gemini", "openai"]
        letter = for_job(
            RecordOrigin("classify", "t", 0, 1, job.id), job, failed.value.error, story
        )
        assert "not tried, known unusable: anthropic: auth" in letter.error
        assert pipeline.limits.available("openai") and pipeline.limits.available("gemini")
    finally:
        await close(pipeline)


async def test_in_an_outage_of_every_provider_jobs_park_instead_of_dying(
    sim: SimThread, tmp_path: Any
) -> None:
    pipeline = pipeline_for(sim, tmp_path)
    tickets = support_tickets(12, prefix="outage")
    jobs = [parse_job({**t, "input": f"{t['input']}\n{MARKER}"}) for t in tickets]
    try:
        ends = await asyncio.gather(
            *(pipeline.runner.run(job) for job in jobs), return_exceptions=True
        )
    finally:
        await close(pipeline)
    parked = [e for e in ends if isinstance(e, ParkJob)]
    assert not [e for e in ends if not isinstance(e, (ParkJob, JobFailed))]
    assert len(parked) >= len(jobs) // 2, [type(e).__name__ for e in ends]
    assert all(not pipeline.limits.available(p) for p in ("openai", "anthropic", "gemini"))
