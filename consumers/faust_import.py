"""faust, imported without aiohttp: ~0.1 s less on the way to a worker's group join.

faust imports aiohttp at start-up for one name, `ClientSession`, which it only uses in type
annotations (`faust.types.web.HttpClientT`); importing aiohttp costs ~0.1 s (it also builds two
TLS contexts at import), all of it before the group join can begin. A worker has faust's web
server off and never asks faust for an HTTP client, so faust is imported with a stand-in for
that one name; the stand-in is removed at once, and a later `import aiohttp` (the adapters'
proxy path, done while the broker holds the join) imports the real package as usual. The app
is given `HttpClient=NoHttpClient` too: faust would otherwise import aiohttp to resolve that
setting's default when the app is configured.
"""

from __future__ import annotations

import sys
import types


class NoHttpClient:
    """faust's HTTP client (its `HttpClient` setting, aiohttp's `ClientSession` by default, which
    faust resolves when the app is configured) and what `faust.types.web.HttpClientT` names in
    faust's annotations: the worker never uses faust's HTTP client (nor its web server)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("faust's HTTP client is not used by Frugal's worker")


def _aiohttp_stand_ins() -> dict[str, types.ModuleType]:
    package = types.ModuleType("aiohttp")
    client = types.ModuleType("aiohttp.client")
    client.ClientSession = NoHttpClient  # type: ignore[attr-defined]
    package.client = client  # type: ignore[attr-defined]
    return {"aiohttp": package, "aiohttp.client": client}


def import_faust() -> None:
    """Import faust's app module, with the stand-in unless aiohttp is imported already."""
    stand_ins = {} if "aiohttp" in sys.modules else _aiohttp_stand_ins()
    sys.modules.update(stand_ins)
    try:
        import faust.app.base  # noqa: F401
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
