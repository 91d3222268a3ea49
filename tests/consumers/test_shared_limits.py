"""Three workers share one provider's `rpm`: together they use most of it and rarely hit a 429.

The simulator enforces the provider's real limit (a 429 above it), equal to the configured
`rpm`. Each worker paces itself at its share of the group's partitions (pipeline.limit_share),
re-split as the workers join.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    jsonl,
    run_frugal,
    sim_providers,
    start_frugal,
    wait_for,
    write_config,
)

from bench.samples import support_tickets
from providers.sim import SimThread
from schemas.config import SimConfig

RPM = 1200
WORKERS = 3
WARM_UP_S = 4.0  # after the last rebalance: the slow start ramps each worker up
WINDOW_S = 15.0
ONE_THIRD = "paces itself at 33%"


def test_three_workers_use_at_least_85_percent_of_the_rpm_with_under_2_percent_429s(
    broker: Any, tmp_path: Path, prefix: str
) -> None:
    nano = [m for m in default_models() if m["name"] == "gpt-4.1-nano"]
    with SimThread(SimConfig(api_key=SIM_KEY, rpm=RPM, latency_ms=20)) as sim:
        config = write_config(
            tmp_path / "frugal.toml",
            prefix=prefix,
            data_dir=tmp_path / "data",
            providers=sim_providers({"openai": sim.base_url}, rpm=RPM),
            models=nano,
            kafka={"bootstrap": broker.bootstrap, "partitions": 6},
        )
        jobs = support_tickets(RPM // 60 * 40, prefix=prefix)  # more than the run can answer
        published = run_frugal(
            ["publish", "--config", str(config), "-"], bootstrap=broker.bootstrap, stdin=jsonl(jobs)
        )
        assert published.returncode == 0, published.stderr[-2000:]
        logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
        workers = [
            start_frugal(["worker", "--config", str(config)], bootstrap=broker.bootstrap, log=log)
            for log in logs
        ]
        try:
            wait_for(
                lambda: all(ONE_THIRD in log.read_text(errors="replace") for log in logs),
                timeout=60,
                what="every worker to take a third of the limits",
            )
            wait_for(lambda: sim.stats()["ok"] > 0, timeout=30, what="calls")
            time.sleep(WARM_UP_S)  # a measurement window, not a synchronisation
            before, started = sim.stats(), time.monotonic()
            time.sleep(WINDOW_S)
            after, elapsed = sim.stats(), time.monotonic() - started
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=60)
    ok = after["ok"] - before["ok"]
    limited = after["rate_limited"] - before["rate_limited"]
    requests = after["requests"] - before["requests"]
    utilization = ok / (RPM / 60 * elapsed)
    print(f"utilization {utilization:.1%}, 429s {limited}/{requests} = {limited / requests:.2%}")
    assert utilization >= 0.85
    assert limited / requests < 0.02
    for log in logs:  # the last share each worker took is a third
        shares = [line for line in log.read_text().splitlines() if "limits: " in line]
        assert ONE_THIRD in shares[-1], shares
