"""faust, imported without aiohttp: ~0.1 s less on the way to a worker's group join.

faust imports aiohttp at start-up for one name, `ClientSession`, which it only uses in type
annotations (`faust.types.web.HttpClientT`); importing aiohttp costs ~0.1 s (it also builds two
TLS contexts at import), all of it before the group join can begin. A worker has faust's web
server off and never asks faust for an HTTP client, so faust is imported with a stand-in for
that one name; the stand-in is removed at once, and a later `import aiohttp` (the adapters'
proxy path, done while the broker holds the join) imports the real package as usual.
"""

from __future__ import annotations

import sys
import types


class _ClientSessionStandIn:
    """What `faust.types.web.HttpClientT` names in faust's annotations when imported here."""


def _aiohttp_stand_ins() -> dict[str, types.ModuleType]:
    package = types.ModuleType("aiohttp")
    client = types.ModuleType("aiohttp.client")
    client.ClientSession = _ClientSessionStandIn  # type: ignore[attr-defined]
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
