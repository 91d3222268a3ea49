"""Retry and fallback in the job runner, against one simulator per provider over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.frugal_testkit import SIM_KEY, default_models, sim_providers

from bench.samples import support_tickets
from pipeline import claims
from pipeline.app import Pipeline
from pipeline.dead_letters import RecordOrigin, for_job
from pipeline.runner import JobFailed, ParkJob
from providers.sim import SimThread
from schemas.config import Config, SimConfig
from schemas.jobs import TaskJob, parse_job
from schemas.rows import ResultRow

PROVIDERS = ("openai", "anthropic", "gemini")


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimThread]]:
    """A simulator per provider, so each can fail on its own."""
    threads = {name: SimThread(SimConfig(api_key=SIM_KEY)) for name in PROVIDERS}
    for sim in threads.values():
        sim.start()
    yield threads
    for sim in threads.values():
        sim.stop()


@pytest.fixture(autouse=True)
def healthy(sims: dict[str, SimThread]) -> None:
    for sim in sims.values():
        sim.patch(fail_rate=0.0, overloaded_rate=0.0)
        sim.reset()


def config_for(sims: dict[str, SimThread], tmp: Any, **retry: float) -> Config:
    providers = sim_providers({name: sim.base_url for name, sim in sims.items()})
    for provider in providers:
        provider["api_key"] = SIM_KEY
    return Config.model_validate(
        {
            "providers": providers,
            "models": default_models(),
            "storage": {"data_dir": str(tmp)},
            "retry": {"base_delay_s": 0.01, "max_delay_s": 0.05, "max_retries": 2, **retry},
        }
    )


def openai_first(**fields: Any) -> TaskJob:
    """A ticket that routes to OpenAI first: the others are only soft-avoided."""
    ticket = support_tickets(1)[0]
    return parse_job({**ticket, "avoid_providers": ["anthropic", "gemini"], **fields})


async def run(config: Config, job: TaskJob) -> tuple[ResultRow, Any]:
    pipeline = Pipeline(config, "127.0.0.1:1", worker_id="test")
    try:
        return await pipeline.runner.run(job)
    finally:
        await close(pipeline)


async def close(pipeline: Pipeline) -> None:
    await pipeline.producer.stop()  # never started: only releases it
    for adapter in pipeline.adapters.values():
        await adapter.aclose()


def calls(sim: SimThread) -> int:
    return int(sim.stats()["requests"])


def test_transient_errors_retry_then_fall_back_to_another_provider(
    sims: dict[str, SimThread], tmp_path: Any
) -> None:
    sims["openai"].patch(fail_rate=1.0)
    result, story = asyncio.run(run(config_for(sims, tmp_path, max_retries=2), openai_first()))
    outcomes = [(row.provider, row.outcome) for row in story.usage_rows]
    assert outcomes[:3] == [("openai", "server_error")] * 3  # one try + max_retries retries
    assert outcomes[3:] == [(result.provider, "ok")]
    assert result.provider != "openai"
    assert [m for m in story.models_tried if m.startswith("gpt")] == ["gpt-4.1-nano"]
    assert calls(sims["openai"]) == 3
    assert result.attempts == 4
    assert result.cost_usd == pytest.approx(sum(r.cost_usd for r in story.usage_rows))


def test_errors_retrying_cannot_fix_skip_straight_to_the_fallback(
    sims: dict[str, SimThread], tmp_path: Any
) -> None:
    sims["openai"].patch(models={"gpt-4.1-nano": {"invalid_rate": 1.0}})
    try:
        result, story = asyncio.run(run(config_for(sims, tmp_path), openai_first()))
    finally:
        sims["openai"].patch(models={"gpt-4.1-nano": {"invalid_rate": 0.0}})
    assert [row.outcome for row in story.usage_rows] == ["invalid_output", "ok"]
    assert story.usage_rows[0].model == "gpt-4.1-nano"
    assert result.model != "gpt-4.1-nano"


def test_a_long_wait_parks_the_job_with_the_attempts_it_made(
    sims: dict[str, SimThread], tmp_path: Any
) -> None:
    config = config_for(sims, tmp_path, base_delay_s=0.5, max_delay_s=0.5, park_after_s=0.1)
    sims["openai"].patch(fail_rate=1.0)
    with pytest.raises(ParkJob) as parked:
        asyncio.run(run(config, openai_first()))
    story = parked.value.story
    assert [(r.provider, r.outcome, r.attempt) for r in story.usage_rows] == [
        ("openai", "server_error", 1)
    ]
    state = story.parked_state(parked.value.delay_s)
    assert state.parks == 1 and state.attempts == 1
    assert state.retries == {"gpt-4.1-nano": 1}
    assert state.not_before > time.time()
    assert state.last_error_type == "server_error"

    sims["openai"].patch(fail_rate=0.0)
    resumed = openai_first(parked=state.model_dump(mode="json"))
    result, later = asyncio.run(run(config, resumed))
    assert result.attempts == 2  # the parked attempt counts
    assert [r.attempt for r in later.usage_rows] == [2]
    assert result.cost_usd == pytest.approx(state.cost_usd + later.usage_rows[0].cost_usd)
    assert result.input_tokens == state.input_tokens + later.usage_rows[0].input_tokens


def test_a_job_parked_again_and_again_dies_with_its_whole_story(
    sims: dict[str, SimThread], tmp_path: Any
) -> None:
    config = config_for(
        sims, tmp_path, base_delay_s=0.5, max_delay_s=0.5, park_after_s=0.1, max_retries=1
    )
    for sim in sims.values():
        sim.patch(fail_rate=1.0)
    job, parks = openai_first(), 0
    while True:
        try:
            asyncio.run(run(config, job))
        except ParkJob as park:
            parks += 1
            state = park.story.parked_state(0).model_copy(
                update={"source_topic": "t.classify", "source_partition": 1, "source_offset": 41}
            )
            job = job.model_copy(update={"parked": state})
            continue
        except JobFailed as failed:
            story, error = failed.story, failed.error
            break
    total_calls = sum(calls(sim) for sim in sims.values())
    assert parks == 3  # each provider: a try, parked, its one retry (max_retries = 1)
    assert story.attempts == total_calls == 6
    assert sorted(story.exhausted_providers) == sorted(PROVIDERS)
    letter = for_job(RecordOrigin("classify", "t.retry", 0, 7, job.id), job, error, story)
    assert letter.attempts == 6
    assert sorted(letter.providers_tried) == sorted(PROVIDERS)
    assert letter.error_type == "server_error"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "t.classify",
        1,
        41,
    )
    assert letter.first_failed_at is not None and letter.first_failed_at <= letter.failed_at
    assert letter.job is not None and "parked" not in letter.job


def test_shutting_down_parks_a_job_waiting_out_a_backoff(
    sims: dict[str, SimThread], tmp_path: Any
) -> None:
    config = config_for(sims, tmp_path, base_delay_s=8, max_delay_s=8, park_after_s=9)
    sims["openai"].patch(fail_rate=1.0)

    async def scenario() -> float:
        pipeline = Pipeline(config, "127.0.0.1:1", worker_id="test")
        task = asyncio.create_task(pipeline.runner.run(openai_first()))
        while calls(sims["openai"]) < 1:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        pipeline.hurry(True)
        with pytest.raises(ParkJob) as parked:
            await asyncio.wait_for(task, 5)
        assert len(parked.value.story.usage_rows) == 1
        elapsed = time.monotonic() - started
        await close(pipeline)
        return elapsed

    assert asyncio.run(scenario()) < 1.0


def test_a_job_hurried_mid_backoff_parks_for_the_rest_of_it_only(
    sims: dict[str, SimThread], tmp_path: Any
) -> None:
    """A revoke or shutdown must not make the job wait its whole backoff again on the retry
    topic: it comes back when the backoff it was sleeping would have ended."""
    config = config_for(sims, tmp_path, base_delay_s=8, max_delay_s=8, park_after_s=9)
    sims["openai"].patch(fail_rate=1.0)

    async def scenario() -> tuple[float, float]:
        pipeline = Pipeline(config, "127.0.0.1:1", worker_id="test")
        task = asyncio.create_task(pipeline.runner.run(openai_first()))
        while calls(sims["openai"]) < 1:
            await asyncio.sleep(0.01)
        failed = time.monotonic()
        await asyncio.sleep(2.0)  # two seconds into a backoff of 4-8 s
        pipeline.hurry(True)
        with pytest.raises(ParkJob) as parked:
            await asyncio.wait_for(task, 5)
        slept = time.monotonic() - failed
        await close(pipeline)
        return parked.value.delay_s, slept

    rest, slept = asyncio.run(scenario())
    assert 4.0 - slept <= rest <= 8.0 - slept + 0.1


def test_a_job_whose_record_was_let_go_on_the_wire_parks_instead_of_sleeping(
    sims: dict[str, SimThread], tmp_path: Any
) -> None:
    """A call outlived the revoke's wait (its claim ended, the handover is over, the hurry is
    off again): when it fails, the job parks at once, keeping its paid call, instead of
    sleeping out a backoff for a record another worker owns now."""
    config = config_for(sims, tmp_path, base_delay_s=8, max_delay_s=8, park_after_s=9)
    sims["openai"].patch(fail_rate=1.0, latency_ms=300)
    ours = True

    async def scenario() -> tuple[ParkJob, float]:
        pipeline = Pipeline(config, "127.0.0.1:1", worker_id="test")

        async def record_task() -> None:
            claims.hold(claims.Claim(lambda: ours))
            await pipeline.runner.run(openai_first())

        task = asyncio.create_task(record_task())
        while sims["openai"].stats()["in_flight"] < 1:
            await asyncio.sleep(0.01)
        let_go = time.monotonic()
        nonlocal ours
        ours = False  # revoked while the call is on the wire
        with pytest.raises(ParkJob) as parked:
            await asyncio.wait_for(task, 5)
        took = time.monotonic() - let_go
        await close(pipeline)
        return parked.value, took

    try:
        park, took = asyncio.run(scenario())
    finally:
        sims["openai"].patch(latency_ms=0)
    assert took < 2.0  # the call's 0.3 s, not a backoff of 4-8 s
    assert park.delay_s >= 3.5  # the backoff it owes travels with it
    assert [r.outcome for r in park.story.usage_rows] == ["server_error"]


def test_a_paid_job_let_go_while_waiting_for_limits_parks_with_its_calls(
    sims: dict[str, SimThread], tmp_path: Any
) -> None:
    """Revoked while it waits behind another provider's limits after a paid call failed: the
    consumer cancels it there (a revoke does not wait for it), and it parks with that call's
    row instead of losing it."""
    config = config_for(sims, tmp_path, max_retries=0)
    for provider in config.providers:
        provider.max_concurrency = 1
    sims["openai"].patch(fail_rate=1.0)
    ours = True
    claim = claims.Claim(lambda: ours)

    async def scenario() -> ParkJob:
        nonlocal ours
        pipeline = Pipeline(config, "127.0.0.1:1", worker_id="test")
        release = asyncio.Event()

        async def hold(provider: str) -> None:  # another job's call, taking the only slot
            async with pipeline.limits[provider].slot(1):
                await release.wait()

        holders = [asyncio.create_task(hold(p)) for p in ("anthropic", "gemini")]

        async def record_task() -> None:
            claims.hold(claim)
            await pipeline.runner.run(openai_first())

        task = asyncio.create_task(record_task())
        deadline = time.monotonic() + 5
        while not (claim.cancellable and calls(sims["openai"]) == 1):
            assert time.monotonic() < deadline, "never cancellable while waiting for the limits"
            await asyncio.sleep(0.01)
        ours = False
        task.cancel()  # what the worker's handover does to a record waiting for limits
        try:
            with pytest.raises(ParkJob) as parked:
                await asyncio.wait_for(task, 2)
        finally:
            release.set()
            await asyncio.gather(*holders)
            await close(pipeline)
        return parked.value

    park = asyncio.run(scenario())
    assert [r.outcome for r in park.story.usage_rows] == ["server_error"]
    assert park.delay_s == 0.0  # due at once: its next owner runs it


def test_a_job_only_told_to_slow_down_parks_instead_of_dying(
    sims: dict[str, SimThread], tmp_path: Any
) -> None:
    """One provider and no retries left: a 429 parks the job (bounded), it is not dead-lettered."""
    providers = sim_providers({"openai": sims["openai"].base_url})
    providers[0]["api_key"] = SIM_KEY
    config = Config.model_validate(
        {
            "providers": providers,
            "models": [m for m in default_models() if m["provider"] == "openai"],
            "storage": {"data_dir": str(tmp_path)},
            "retry": {"max_retries": 0, "max_parks": 1, "base_delay_s": 0.01},
        }
    )
    sims["openai"].patch(rpm=30)  # a burst of one call, then 429 with Retry-After (2 s)
    try:
        asyncio.run(run(config, openai_first(id="first")))  # takes the only call in the burst
        with pytest.raises(ParkJob) as parked:
            asyncio.run(run(config, openai_first(id="second")))
        story = parked.value.story
        assert [r.outcome for r in story.usage_rows] == ["rate_limited"]
        assert story.exhausted_providers == set()  # tried afresh when it comes back
        assert parked.value.delay_s >= 0.5  # the provider's Retry-After is honoured
        state = story.parked_state(0)
        with pytest.raises(JobFailed) as failed:  # parked max_parks times already: it dies
            asyncio.run(
                run(config, openai_first(id="second", parked=state.model_dump(mode="json")))
            )
        assert failed.value.error.type == "rate_limited"
    finally:
        sims["openai"].patch(rpm=None)
