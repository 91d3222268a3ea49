"""Dead letters end to end: jobs that fail everywhere, then `frugal dlq replay` once providers recover."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    jsonl,
    lake_query,
    run_frugal,
    sim_providers,
    write_config,
)

from bench.samples import invoices, support_tickets
from providers.sim import SimThread
from schemas.config import SimConfig, SimModelConfig
from schemas.rows import DeadLetter

PREFIX = "replay-e2e"
MODELS = {m["name"]: m for m in default_models()}
# Jobs of tier 2 and up fail on every adequate model (each answers invalidly) while the cheap
# tier-1 models answer well; a few transient 5xx on top exercise retries on the way.
STRONG = {name for name, m in MODELS.items() if m["tier"] >= 2}
STRONG_PROVIDERS = {MODELS[name]["provider"] for name in STRONG}
FAILING = SimConfig(
    api_key=SIM_KEY,
    fail_rate=0.1,
    models={MODELS[name]["model"]: SimModelConfig(invalid_rate=1.0) for name in STRONG},
)


async def _read_topic(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        records: list[tuple[str, bytes]] = []
        while batch := await consumer.getmany(timeout_ms=500):
            for messages in batch.values():
                records += [(m.key.decode() if m.key else "", m.value or b"") for m in messages]
        return records
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    return asyncio.run(_read_topic(bootstrap, topic))


def frugal(args: list[str], config: Path, bootstrap: str) -> Any:
    done = run_frugal([*args, "--config", str(config)], bootstrap=bootstrap, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def dead_now(data: Path) -> list[DeadLetter]:
    rows = lake_query(data, "SELECT * FROM dead_letters_all WHERE status = 'dead'")
    columns = [c[0] for c in lake_query(data, "DESCRIBE SELECT * FROM dead_letters_all")]
    letters = []
    for row in rows:
        record = dict(zip(columns, row, strict=True))
        record["job"] = json.loads(record["job"]) if record["job"] else None
        letters.append(DeadLetter.model_validate(record))
    return letters


@pytest.fixture(scope="module", params=["embedded", "kafka"])
def replayed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The scenario on the embedded broker, then on a real Kafka where the kit is named."""
    broker: Any = request.getfixturevalue("broker" if request.param == "embedded" else "real_kafka")
    tmp = tmp_path_factory.mktemp("replay")
    data = tmp / "data"
    bootstrap = broker.bootstrap
    with SimThread(FAILING) as sim:
        base = sim.base_url
        config = write_config(
            tmp / "frugal.toml",
            prefix=PREFIX,
            data_dir=data,
            providers=sim_providers({"openai": base, "anthropic": base, "gemini": base}),
            models=default_models(),
            retry={"max_retries": 2},
            kafka={"session_timeout_s": 6},  # real Kafka's minimum
        )
        # Extraction answers that fail are always caught (prose truncates the JSON).
        hard = [{**t, "min_tier": 2} for t in invoices(8, seed=3, prefix="hard")]
        jobs = support_tickets(40) + invoices(10) + hard
        published = run_frugal(
            ["publish", "--config", str(config), "-"], bootstrap=bootstrap, stdin=jsonl(jobs)
        )
        assert published.returncode == 0, published.stderr
        first = frugal(["worker", "--drain"], config, bootstrap)
        dead = dead_now(data)
        calls_per_job = dict(lake_query(data, "SELECT job_id, count(*) FROM usage_all GROUP BY 1"))
        dlq = {
            kind: read_topic(bootstrap, f"{PREFIX}.{kind}.dlq") for kind in ("classify", "extract")
        }
        listed = frugal(["dlq", "list"], config, bootstrap)

        sim.patch(fail_rate=0.0, models={MODELS[n]["model"]: {"invalid_rate": 0.0} for n in STRONG})
        topic_before = read_topic(bootstrap, f"{PREFIX}.classify")
        dry = frugal(["dlq", "replay", "--dry-run"], config, bootstrap)
        topic_after_dry = read_topic(bootstrap, f"{PREFIX}.classify")
        # Replayed twice before any worker runs: two copies of each job wait on the topics.
        once = frugal(["dlq", "replay", "--exclude-provider", "openai"], config, bootstrap)
        twice = frugal(["dlq", "replay"], config, bootstrap)
        calls_before = sim.stats()["requests"]
        second = frugal(["worker", "--drain"], config, bootstrap)
        calls = sim.stats()["requests"] - calls_before
        again = frugal(["dlq", "replay"], config, bootstrap)
        listed_after = frugal(
            ["sql", "--format", "json", "SELECT count(*) AS n FROM dead_letters"], config, bootstrap
        )
        outputs = [
            p.stdout + p.stderr
            for p in (published, first, listed, dry, once, twice, second, again, listed_after)
        ]
    return {
        "tmp": tmp,
        "data": data,
        "jobs": jobs,
        "dead": dead,
        "calls_per_job": calls_per_job,
        "dlq": dlq,
        "listed": listed.stdout,
        "dry": dry.stdout,
        "replayed": (once.stdout, twice.stdout),
        "topic_growth_on_dry_run": len(topic_after_dry) - len(topic_before),
        "calls": calls,
        "again": again.stdout,
        "dead_after": json.loads(listed_after.stdout)[0]["n"],
        "outputs": outputs,
    }


def test_the_failing_run_split_the_jobs_into_results_and_dead_letters(
    replayed: dict[str, Any],
) -> None:
    dead = {d.job_id for d in replayed["dead"]}
    assert dead == {j["id"] for j in replayed["jobs"] if j.get("min_tier") == 2}
    assert len(dead) == len(replayed["dead"])  # one dead letter per job
    answered = {r[0] for r in lake_query(replayed["data"], "SELECT job_id FROM results_all")}
    everyone = {j["id"] for j in replayed["jobs"]}
    assert dead | answered == everyone


def test_a_dead_letter_tells_the_whole_story(replayed: dict[str, Any]) -> None:
    jobs = {j["id"]: j for j in replayed["jobs"]}
    for letter in replayed["dead"]:
        job = jobs[letter.job_id]
        assert set(letter.providers_tried) == STRONG_PROVIDERS  # every adequate one was tried
        assert set(letter.models_tried) == STRONG
        assert letter.error_type == "invalid_output"
        assert letter.error
        assert letter.attempts >= len(STRONG)
        assert letter.first_failed_at is not None and letter.first_failed_at <= letter.failed_at
        assert letter.source_topic == f"{PREFIX}.{job['kind']}"
        assert letter.source_partition >= 0 and letter.source_offset >= 0
        assert letter.replay_count == 0
        assert letter.job is not None and letter.job["input"] == job["input"]
        assert letter.attempts == replayed["calls_per_job"][letter.job_id]


def test_every_dead_letter_is_also_on_its_dlq_topic(replayed: dict[str, Any]) -> None:
    on_topics = {
        key: DeadLetter.model_validate_json(value)
        for records in replayed["dlq"].values()
        for key, value in records
    }
    assert set(on_topics) == {d.job_id for d in replayed["dead"]}
    for letter in on_topics.values():
        assert letter.error_type == "invalid_output"
        assert set(letter.providers_tried) == STRONG_PROVIDERS


def test_dlq_list_counts_dead_letters_by_kind_and_error_type(replayed: dict[str, Any]) -> None:
    lines = replayed["listed"].splitlines()
    for kind in ("classify", "extract"):
        n = sum(1 for d in replayed["dead"] if d.kind == kind)
        if n:
            assert any(
                kind in line and "invalid_output" in line and line.split()[-1].strip("|") == str(n)
                for line in lines
            ), replayed["listed"]


def test_a_dry_run_publishes_nothing(replayed: dict[str, Any]) -> None:
    assert f"would replay {len(replayed['dead'])} dead letters" in replayed["dry"]
    assert replayed["topic_growth_on_dry_run"] == 0


def test_after_replay_every_job_has_exactly_one_correct_result(replayed: dict[str, Any]) -> None:
    rows = lake_query(replayed["data"], "SELECT job_id, output FROM results_all")
    assert len(rows) == len(replayed["jobs"])  # replaying twice added no second result
    outputs = {job_id: json.loads(output) for job_id, output in rows}
    for job in replayed["jobs"]:
        assert outputs[job["id"]] == job["metadata"]["expected"], job["id"]
    assert replayed["dead_after"] == 0


def test_a_job_replayed_twice_is_paid_for_once(replayed: dict[str, Any]) -> None:
    n = len(replayed["dead"])
    assert replayed["replayed"] == (f"replayed {n} dead letters\n",) * 2
    assert replayed["calls"] == n


def test_replayed_jobs_avoid_excluded_providers_and_leave_dead_letters(
    replayed: dict[str, Any],
) -> None:
    dead = [d.job_id for d in replayed["dead"]]
    quoted = ", ".join(f"'{j}'" for j in dead)
    providers = lake_query(
        replayed["data"], f"SELECT DISTINCT provider FROM results_all WHERE job_id IN ({quoted})"
    )
    assert ("openai",) not in providers
    resolved = lake_query(
        replayed["data"],
        "SELECT job_id, replay_count FROM dead_letters_all WHERE status = 'resolved'",
    )
    assert sorted(resolved) == sorted((j, 1) for j in dead)


def test_a_second_replay_changes_nothing(replayed: dict[str, Any]) -> None:
    assert "replayed 0 dead letters" in replayed["again"]


def test_no_file_or_output_of_the_run_contains_the_api_key(replayed: dict[str, Any]) -> None:
    for text in replayed["outputs"]:
        assert SIM_KEY not in text
    for path in replayed["tmp"].rglob("*"):
        if path.is_file():
            assert SIM_KEY.encode() not in path.read_bytes(), path
