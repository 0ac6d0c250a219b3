"""Flowersec endpoint library: E2EE, Yamux and RPC over WebSocket.

The connect and serve entry points are importable from here. They load on
first use: the tunnel daemon imports ``flowersec_endpoint.encoding``, which
runs this file, and must not pull in aiohttp and the connection stack.
``connect_tunnel`` here is the connecting side's; the serving side's
attach is :func:`flowersec_endpoint.serve.connect_tunnel`.

``connect`` is also the name of a submodule, and Python sets a package
attribute to its submodule once that loads; the package keeps the
function under that name instead. Import from the submodule with
``from flowersec_endpoint.connecting import ...``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage

if TYPE_CHECKING:
    from flowersec_endpoint.connecting import connect, connect_direct, connect_tunnel
    from flowersec_endpoint.serve import Server, direct_handler, serve_tunnel

_LAZY = {
    "connect": "flowersec_endpoint.connecting",
    "connect_direct": "flowersec_endpoint.connecting",
    "connect_tunnel": "flowersec_endpoint.connecting",
    "Server": "flowersec_endpoint.serve",
    "direct_handler": "flowersec_endpoint.serve",
    "serve_tunnel": "flowersec_endpoint.serve",
}

__all__ = [
    "Code",
    "FlowersecError",
    "Path",
    "Server",
    "Stage",
    "connect",
    "connect_direct",
    "connect_tunnel",
    "direct_handler",
    "serve_tunnel",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
