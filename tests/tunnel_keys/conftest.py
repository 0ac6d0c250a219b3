"""Shared fixtures: the spec's test key, token crafting, tool runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flowersec_endpoint.encoding import b64u_encode, dumps_compact
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.tokens import TokenPayload

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"
SEED = bytes(range(32))

BASE_CLAIMS: dict[str, Any] = {
    "kid": "k1",
    "aud": "flowersec-tunnel:dev",
    "iss": "issuer-dev",
    "channel_id": "chan_test_123",
    "role": 1,
    "token_id": "tok_test_1",
    "init_exp": 1700000000,
    "idle_timeout_seconds": 60,
    "iat": 1699999900,
    "exp": 1699999960,
}

CraftFst2 = Callable[[bytes], str]


@pytest.fixture
def token_vectors() -> list[dict[str, Any]]:
    """The official token vectors; skipped when shared/ is not checked out."""
    path = VECTORS / "token_vectors.json"
    if not path.is_file():
        pytest.skip(f"official vectors not present at {path}")
    cases: list[dict[str, Any]] = json.loads(path.read_text())["cases"]
    return cases


@pytest.fixture
def key() -> IssuerKey:
    """The spec's example issuer key (seed 00..1f, kid k1)."""
    return IssuerKey.from_seed("k1", SEED)


@pytest.fixture
def keyset(key: IssuerKey) -> dict[str, bytes]:
    return {key.kid: key.public_key}


@pytest.fixture
def payload() -> TokenPayload:
    return TokenPayload(**BASE_CLAIMS)


@pytest.fixture
def craft_fst2(key: IssuerKey) -> CraftFst2:
    """Sign arbitrary payload bytes as FST2, bypassing the signer's checks."""

    def craft(body: bytes) -> str:
        signed = "FST2." + b64u_encode(body)
        return signed + "." + b64u_encode(key.sign(signed.encode()))

    return craft


@pytest.fixture
def claims_json() -> Callable[..., bytes]:
    """Compact payload JSON from the base claims with overrides."""

    def build(**changes: Any) -> bytes:
        return dumps_compact({**BASE_CLAIMS, **changes})

    return build


@dataclass
class ToolResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


ToolRunner = Callable[..., ToolResult]


@pytest.fixture
def run_tool(tmp_path: Path) -> ToolRunner:
    """Run an issuer tool as a subprocess in ``tmp_path`` with a clean env."""

    def run(main: str, *args: str, env: Mapping[str, str] | None = None) -> ToolResult:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("FSEC_")}
        clean.update(env or {})
        code = f"import sys; from flowersec_tunnel.issuer_cli import {main}; "
        code += f"sys.exit({main}(sys.argv[1:]))"
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=tmp_path,
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return ToolResult(proc.returncode, proc.stdout, proc.stderr)

    return run
