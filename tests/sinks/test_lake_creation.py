"""Processes starting at the same instant on a brand-new catalog all get the lake tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.frugal_testkit import wait_for

from sinks import lakehouse

REPO = Path(__file__).resolve().parents[2]
# Waits for the go file, so both processes create the lake at the same instant.
CREATE = """
import sys, time
from pathlib import Path
from schemas.config import StorageConfig
from sinks import lakehouse
go = Path(sys.argv[1])
storage = StorageConfig(data_dir=Path(sys.argv[2]), catalog=sys.argv[3])
storage.data_dir.mkdir(parents=True)
(storage.data_dir / "ready").touch()
while not go.exists():
    time.sleep(0.01)
con = lakehouse.open_lake(storage)
print(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake'").fetchone()[0])
"""


def test_two_machines_create_one_fresh_catalog_at_once(tmp_path: Path) -> None:
    """Each has its own disk (no shared lock file): the loser of the race retries."""
    catalog = f"sqlite:{tmp_path / 'shared' / 'lake.sqlite'}"
    (tmp_path / "shared").mkdir()
    go = tmp_path / "go"
    machines = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, str(go), str(tmp_path / name), catalog],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("machine-a", "machine-b")
    ]
    wait_for(
        lambda: all((tmp_path / name / "ready").exists() for name in ("machine-a", "machine-b")),
        timeout=60,
        what="both machines to be ready",
    )
    go.touch()
    results = [m.communicate(timeout=120) for m in machines]

    assert [m.returncode for m in machines] == [0, 0], [err[-1500:] for _, err in results]
    tables = len(lakehouse._table_ddl()) - len(lakehouse.TABLE_ROWS)  # one ALTER per log table
    assert [out.strip() for out, _ in results] == [str(tables)] * 2
