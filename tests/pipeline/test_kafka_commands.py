"""Commands against a real broker: topics, consumer groups, `frugal broker`, the drain count.

Topic and drain tests run on the embedded broker and, where FRUGAL_TEST_KAFKA_KIT names the kit,
on Kafka 3.1 (which, unlike Tansu, creates nothing on first use).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    frugal_env,
    jsonl,
    kafka_settings,
    run_frugal,
    sim_providers,
    wait_for,
    write_config,
)
from support.kafka_kit import NOT_RUN, KafkaKitBroker, kit_dir

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker, free_port
from bus.group_limits import check_session_timeout
from bus.topics import all_topics, ensure_topics, partition_mismatches
from providers.sim import SimThread
from schemas.config import KafkaConfig, SimConfig
from schemas.errors import ConfigError

AnyBroker = EmbeddedBroker | KafkaKitBroker
# What the issue saw on a new cluster (a loaded machine may log unrelated timer warnings).
KAFKA_NOISE = ("Traceback", "AssertionError", "NotLeaderForPartition", "CoordinatorNotAvailable")


def test_the_default_group_follows_the_topic_prefix() -> None:
    assert KafkaConfig().group_id == "frugal-workers"
    assert KafkaConfig(topic_prefix="staging").group_id == "staging-workers"
    assert KafkaConfig(topic_prefix="staging", group_id="mine").group_id == "mine"


async def test_topics_reports_an_existing_topics_real_partition_count(
    each_broker: AnyBroker, prefix: str
) -> None:
    kafka = KafkaConfig(topic_prefix=prefix, partitions=4)
    admin = AIOKafkaAdminClient(bootstrap_servers=each_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(kafka.topic("classify"), 1, 1)])
    finally:
        await admin.close()

    counts = await ensure_topics(each_broker.bootstrap, kafka)

    assert set(counts) == set(all_topics(kafka))
    assert counts[kafka.topic("classify")] == 1
    assert counts[kafka.topic("extract")] == 4
    (line,) = partition_mismatches(kafka, counts)
    assert line.startswith(f"{kafka.topic('classify')}: 1 partition, not 4 as configured")


def test_topics_command_says_plainly_when_partitions_differ(
    each_broker: AnyBroker, prefix: str, tmp_path: Path
) -> None:
    config = tmp_path / "frugal.toml"
    config.write_text(f'[kafka]\ntopic_prefix = "{prefix}"\npartitions = 3\n')
    first = run_frugal(["topics", "--config", str(config)], bootstrap=each_broker.bootstrap)
    assert first.returncode == 0, first.stderr
    assert "as configured: 3 partitions each" in first.stdout
    config.write_text(f'[kafka]\ntopic_prefix = "{prefix}"\npartitions = 5\n')
    again = run_frugal(["topics", "--config", str(config)], bootstrap=each_broker.bootstrap)
    assert again.returncode == 0, again.stderr
    assert f"{prefix}.classify: 3 partitions, not 5 as configured" in again.stdout
    for noise in KAFKA_NOISE:
        assert noise not in again.stderr + first.stderr


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def test_broker_stops_its_child_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "broker", "--port", str(port)],
        env=frugal_env("embedded"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), timeout=20, what="the broker to listen")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        wait_for(lambda: not port_open(port), timeout=10, what="the broker child to exit")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_drain_counts_the_work_left_not_the_end_offsets(
    each_broker: AnyBroker, prefix: str, tmp_path: Path
) -> None:
    with SimThread(SimConfig(api_key=SIM_KEY)) as sim:
        base = sim.base_url
        config = write_config(
            tmp_path / "frugal.toml",
            prefix=prefix,
            data_dir=tmp_path / "data",
            providers=sim_providers({"openai": base, "anthropic": base, "gemini": base}),
            models=default_models(),
            kafka=kafka_settings(each_broker),
        )
        jobs = support_tickets(15)
        args = ["--config", str(config)]
        for batch in (jobs[:10], jobs[10:]):
            published = run_frugal(
                ["publish", *args, "-"], bootstrap=each_broker.bootstrap, stdin=jsonl(batch)
            )
            assert published.returncode == 0, published.stderr
            drain = run_frugal(["worker", *args, "--drain"], bootstrap=each_broker.bootstrap)
            assert drain.returncode == 0, drain.stderr[-3000:]
            assert f"drain: {len(batch)} records to do at start" in drain.stderr
            for noise in KAFKA_NOISE:
                assert noise not in drain.stderr, drain.stderr[-3000:]


def test_a_brand_new_kafka_cluster_gets_no_warnings(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The first publish and drain on a new cluster: no offsets topic, no topics, no leaders."""
    kit = kit_dir()
    if kit is None:
        pytest.skip(NOT_RUN)
    fresh = tmp_path_factory.mktemp("fresh-kafka")
    with KafkaKitBroker(kit, fresh) as kafka, SimThread(SimConfig(api_key=SIM_KEY)) as sim:
        base = sim.base_url
        config = write_config(
            tmp_path / "frugal.toml",
            prefix="fresh",
            data_dir=tmp_path / "data",
            providers=sim_providers({"openai": base, "anthropic": base, "gemini": base}),
            models=default_models(),
            kafka=kafka_settings(kafka),
        )
        args = ["--config", str(config)]
        runs = [  # publish first: it meets topics whose partitions have no leader yet
            run_frugal(
                ["publish", *args, "-"],
                bootstrap=kafka.bootstrap,
                stdin=jsonl(support_tickets(5)),
            ),
            run_frugal(["worker", *args, "--drain"], bootstrap=kafka.bootstrap),
            run_frugal(["topics", *args], bootstrap=kafka.bootstrap),
        ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
        for noise in KAFKA_NOISE:
            assert noise not in run.stderr, run.stderr[-3000:]


def test_a_session_timeout_kafka_refuses_is_one_line_not_a_hang(
    real_kafka: KafkaKitBroker, prefix: str, tmp_path: Path
) -> None:
    """Kafka refuses a group join under group.min.session.timeout.ms (6 s here); faust would
    retry that join forever, so the worker says so before joining and exits."""
    config = write_config(
        tmp_path / "frugal.toml",
        prefix=prefix,
        data_dir=tmp_path / "data",
        providers=sim_providers(
            {p: "http://127.0.0.1:9" for p in ("openai", "anthropic", "gemini")}
        ),
        models=default_models(),
        kafka={"session_timeout_s": 3},
    )
    worker = run_frugal(
        ["worker", "--config", str(config), "--drain"], bootstrap=real_kafka.bootstrap, timeout=60
    )
    assert worker.returncode != 0
    error = worker.stderr.strip().splitlines()[-1]
    assert "kafka.session_timeout_s = 3 is outside what this broker allows (6-1800 s" in error
    assert "Traceback" not in worker.stderr


def test_a_broker_that_does_not_report_its_bounds_is_not_checked() -> None:
    check_session_timeout(0.5, None)
    check_session_timeout(6, (6.0, 1800.0))
    with pytest.raises(ConfigError, match="session_timeout_s = 5 is outside"):
        check_session_timeout(5, (6.0, 1800.0))
