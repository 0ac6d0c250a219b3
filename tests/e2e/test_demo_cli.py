"""``flowersec-demo`` subcommands run as real processes."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.demo.roles import read_json_input
from flowersec_endpoint.errors import Code, FlowersecError
from flowersec_tunnel.issuer import GrantPair

DEMO = str(Path(sys.executable).with_name("flowersec-demo"))
ORIGIN = "http://127.0.0.1"
EXPECTED = (
    'rpc response: {"ok":true}\n'
    'rpc notify: {"hello":"world"}\n'
    'echo response: "hello over yamux stream: echo"\n'
)
Mint = Callable[..., GrantPair]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSEC_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(
    *args: str, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEMO, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        check=False,
    )


def test_one_command_demo() -> None:
    result = _run("--calls", "50", "--concurrency", "4", timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "\n".join(lines[3:6]) + "\n" == EXPECTED
    assert lines[0].startswith("tunnel: ws://127.0.0.1:")
    assert any(line.startswith("rpc burst: 50 calls") for line in lines)
    assert lines[-1] == "stopped: tunnel exited with status 0"


def test_direct_server_and_client() -> None:
    server = subprocess.Popen(
        [DEMO, "direct-server", "--listen", "127.0.0.1:0", "--allow-origin", ORIGIN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        info = json.loads(line)
        assert list(info) == [
            "ws_url",
            "channel_id",
            "e2ee_psk_b64u",
            "channel_init_expire_at_unix_s",
            "default_suite",
        ]
        assert info["ws_url"].startswith("ws://127.0.0.1:")
        for _ in range(2):
            result = _run(
                "direct-client", "--info", "-", "--origin", ORIGIN, stdin=line
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout == EXPECTED
        refused = _run(
            "direct-client", "--info", "-", "--origin", "https://x.example", stdin=line
        )
        assert refused.returncode == 1
        assert "direct connect (dial_failed)" in refused.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0


def test_tunnel_server_and_client_with_grant_files(mint: Mint, tmp_path: Path) -> None:
    pair = mint()
    server_file = tmp_path / "server.json"
    server_file.write_text(json.dumps({"grant_server": pair.server.to_obj()}))
    pair_json = json.dumps(
        {"grant_client": pair.client.to_obj(), "grant_server": pair.server.to_obj()}
    )
    server = subprocess.Popen(
        [DEMO, "server", "--grant", str(server_file), "--origin", ORIGIN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        result = _run("client", "--grant", "-", "--origin", ORIGIN, stdin=pair_json)
        assert result.returncode == 0, result.stderr
        assert result.stdout == EXPECTED
        assert server.wait(15) == 0
        replay = _run("client", "--grant", "-", "--origin", ORIGIN, stdin=pair_json)
        assert replay.returncode == 1
        assert "tunnel attach (token_replay)" in replay.stderr
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_origin_from_environment(mint: Mint, tmp_path: Path) -> None:
    grant = dataclasses.replace(mint().client, tunnel_url="ws://127.0.0.1:9/ws")
    grant_file = tmp_path / "client.json"
    grant_file.write_text(grant.to_json().decode())
    env = _env() | {"FSEC_ORIGIN": ORIGIN}
    result = subprocess.run(
        [DEMO, "client", "--grant", str(grant_file)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    assert "tunnel connect (dial_failed)" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["client"],
        ["direct-server", "--listen", "127.0.0.1:0"],
        ["bogus"],
    ],
)
def test_usage_errors(args: list[str]) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_stdin_reads_only_the_first_object() -> None:
    stream = io.StringIO('{"a":\n 1}\n{"b": 2}\n')
    assert read_json_input("-", stream) == {"a": 1}
    assert stream.readline() == '{"b": 2}\n'


@given(st.text(max_size=300))
def test_stdin_parser_raises_only_invalid_input(text: str) -> None:
    try:
        value = read_json_input("-", io.StringIO(text))
    except FlowersecError as exc:
        assert exc.code is Code.INVALID_INPUT
        return
    assert isinstance(value, dict)
