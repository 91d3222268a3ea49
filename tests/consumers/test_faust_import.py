"""faust is imported without aiohttp on the way to the group join, and aiohttp still works after."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import sys
    import consumers.worker
    assert "faust.app.base" in sys.modules
    assert "aiohttp" not in sys.modules, "aiohttp imported before the join"
    import aiohttp
    import aiohttp.client
    assert aiohttp.ClientSession is aiohttp.client.ClientSession
    assert aiohttp.ClientSession.__module__ == "aiohttp.client"
    import faust
    app = faust.App("lean-import-check", web_enabled=False, store="memory://")
    app.topic("t")
    print("ok")
    """
)


def test_faust_imports_without_aiohttp_and_the_real_aiohttp_imports_later() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_with_aiohttp_imported_first_faust_gets_the_real_one() -> None:
    check = "import aiohttp, sys\nimport consumers.worker\nimport faust.types.web as w\n"
    check += "assert w.HttpClientT is aiohttp.ClientSession\nprint('ok')\n"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_the_worker_app_is_built_without_importing_aiohttp() -> None:
    check = (
        "import sys\nimport consumers.worker as cw\nfrom schemas.config import Config\n"
        "cw.StreamWorker(Config(), '127.0.0.1:9', ['classify'])\n"
        "assert 'aiohttp' not in sys.modules\nprint('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
