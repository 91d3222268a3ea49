"""Issue 13's workload with and without audits: share of right results and the bill against
the frontier model alone. `python -m bench.audit_accuracy [N]` (default 2,000 jobs)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.audit_workload import AUDITED_ROUTE, jobs, run, sim_config, write_config
from bus.broker import EmbeddedBroker
from providers.sim import SimThread


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2000
    scenarios: list[tuple[str, dict[str, Any], str | None]] = [
        ("frontier alone", {}, "frontier"),
        ("without audits", {}, None),
        ("with audits", AUDITED_ROUTE, None),
    ]
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker() as broker,
        SimThread(sim_config()) as sim,
    ):
        for i, (name, route, only) in enumerate(scenarios):
            work = Path(tmp) / f"s{i}"
            work.mkdir()
            config = write_config(
                work / "frugal.toml", prefix=f"bench-audit-{i}", data_dir=work / "data",
                sim_url=sim.base_url, route=route, only=only,
            )  # fmt: skip
            outcome = run(config, broker.bootstrap, jobs(n, f"s{i}"), work / "data")
            print(f"{name}: {outcome.line()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
