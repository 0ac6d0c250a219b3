"""The package's top-level names, loaded lazily.

``from flowersec_endpoint import connect, Server, ...`` works, while a bare
``import flowersec_endpoint`` (which the tunnel pulls in through
``flowersec_endpoint.encoding``) still loads no connection stack.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import flowersec_endpoint
from flowersec_endpoint import errors, serve

NAMES = [
    "connect",
    "connect_tunnel",
    "connect_direct",
    "Server",
    "serve_tunnel",
    "direct_handler",
    "FlowersecError",
]


def test_top_level_names() -> None:
    from flowersec_endpoint import (
        FlowersecError,
        Server,
        connect,
        connect_direct,
        connect_tunnel,
        direct_handler,
        serve_tunnel,
    )

    connect_module = sys.modules["flowersec_endpoint.connecting"]
    assert connect is connect_module.connect
    assert connect_tunnel is connect_module.connect_tunnel
    assert connect_direct is connect_module.connect_direct
    assert Server is serve.Server
    assert serve_tunnel is serve.serve_tunnel
    assert direct_handler is serve.direct_handler
    assert FlowersecError is errors.FlowersecError
    assert set(NAMES) <= set(flowersec_endpoint.__all__)
    assert set(NAMES) <= set(dir(flowersec_endpoint))


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = flowersec_endpoint.no_such_name  # type: ignore[attr-defined]


def _loaded_after(statement: str) -> set[str]:
    probe = f"{statement}\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(result.stdout.split())


@pytest.mark.parametrize(
    ("statement", "foreign"),
    [
        ("import flowersec_endpoint", {"aiohttp", "nacl", "jwt"}),
        ("import flowersec_endpoint.encoding", {"aiohttp", "nacl", "jwt"}),
        # The token verifier needs PyNaCl and PyJWT itself, never aiohttp.
        ("import flowersec_tunnel.tokens", {"aiohttp"}),
    ],
)
def test_light_imports_stay_light(statement: str, foreign: set[str]) -> None:
    loaded = _loaded_after(statement)
    ours = {name for name in loaded if name.startswith("flowersec_endpoint")}
    assert ours <= {
        "flowersec_endpoint",
        "flowersec_endpoint.encoding",
        "flowersec_endpoint.errors",
    }
    assert not foreign & loaded


def test_lazy_name_loads_its_module() -> None:
    loaded = _loaded_after("from flowersec_endpoint import Server")
    assert "flowersec_endpoint.serve" in loaded
