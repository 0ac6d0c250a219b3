"""The issuer tools as subprocesses: exit codes, outputs, modes, env."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flowersec_endpoint.encoding import b64u_decode
from flowersec_endpoint.grants import decode_grant_client_json, decode_grant_server_json
from flowersec_tunnel.keys import (
    IssuerKey,
    load_issuer_key,
    load_keyset,
    write_issuer_key,
)
from flowersec_tunnel.tokens import verify_token

KEYGEN = "keygen_main"
CHANNELINIT = "channelinit_main"
DIRECTINIT = "directinit_main"
BUILD = ["version", "commit", "date"]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def key_file(tmp_path: Path, key: IssuerKey) -> Path:
    path = tmp_path / "issuer_key.json"
    write_issuer_key(path, key)
    return path


# flowersec-issuer-keygen


def test_keygen_defaults(run_tool: Any, tmp_path: Path) -> None:
    result = run_tool(KEYGEN)
    assert result.code == 0, result.stderr
    assert result.stdout.endswith("}\n") and "\n" not in result.stdout[:-1]
    out = result.json()
    assert list(out) == [*BUILD, "kid", "private_key_file", "issuer_keys_file"]
    private = tmp_path / "issuer_key.json"
    keys = tmp_path / "issuer_keys.json"
    assert out["kid"] == "k1"
    assert out["private_key_file"] == str(private)
    assert out["issuer_keys_file"] == str(keys)
    assert (mode_of(private), mode_of(keys)) == (0o600, 0o644)
    key = load_issuer_key(private)
    assert load_keyset(keys) == {"k1": key.public_key}
    assert not private.read_bytes().endswith(b"\n")


def test_keygen_refuses_then_overwrites(run_tool: Any, tmp_path: Path) -> None:
    keys = tmp_path / "issuer_keys.json"
    keys.write_text("keep")
    result = run_tool(KEYGEN)
    assert result.code == 2
    assert result.stderr == (
        "refusing to overwrite existing file: issuer_keys.json (use --overwrite)\n"
    )
    assert result.stdout == ""
    assert keys.read_text() == "keep"
    assert not (tmp_path / "issuer_key.json").exists()
    result = run_tool(KEYGEN, "--overwrite", "--kid", " k7 ", "--pretty")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith('{\n  "version": ')
    assert list(load_keyset(keys)) == ["k7"]


def test_keygen_env_and_relative_paths(run_tool: Any, tmp_path: Path) -> None:
    env = {
        "FSEC_ISSUER_KID": "env-kid",
        "FSEC_ISSUER_OUT_DIR": "out/nested",
        "FSEC_ISSUER_PRIVATE_KEY_FILE": "priv.json",
        "FSEC_TUNNEL_ISSUER_KEYS_FILE": "fallback.json",
    }
    result = run_tool(KEYGEN, env=env)
    assert result.code == 0, result.stderr
    out_dir = tmp_path / "out" / "nested"
    assert mode_of(out_dir) == 0o755
    assert result.json()["kid"] == "env-kid"
    assert load_issuer_key(out_dir / "priv.json").kid == "env-kid"
    assert list(load_keyset(out_dir / "fallback.json")) == ["env-kid"]
    env["FSEC_ISSUER_KEYS_FILE"] = str(tmp_path / "abs.json")
    result = run_tool(
        KEYGEN, "--kid", "flag-kid", "--private-key-file=p2.json", env=env
    )
    assert result.code == 0, result.stderr
    assert result.json()["issuer_keys_file"] == str(tmp_path / "abs.json")
    assert list(load_keyset(tmp_path / "abs.json")) == ["flag-kid"]
    assert (out_dir / "p2.json").exists()


def test_keygen_usage_errors(run_tool: Any, tmp_path: Path) -> None:
    result = run_tool(KEYGEN, "--kid", "  ")
    assert result.code == 2
    assert result.stderr.startswith("missing --kid\nUsage of flowersec-issuer-keygen:")
    result = run_tool(KEYGEN, "--bogus")
    assert result.code == 2
    assert list(tmp_path.iterdir()) == []


# flowersec-channelinit


def test_channelinit_missing_required(run_tool: Any, key_file: Path) -> None:
    result = run_tool(
        CHANNELINIT, "--issuer-private-key-file", str(key_file), "--aud=a"
    )
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "missing --issuer-private-key-file, --tunnel-url, --aud, or --iss\n"
        "Usage of flowersec-channelinit:\n"
    )


def test_channelinit_pair(
    run_tool: Any, key_file: Path, keyset: dict[str, bytes]
) -> None:
    before = time.time()
    result = run_tool(
        CHANNELINIT,
        "-issuer-private-key-file",
        str(key_file),
        "--tunnel-url= ws://127.0.0.1:8080/ws ",
        "--aud",
        "flowersec-tunnel:dev",
        "--iss",
        "issuer-dev",
        "--channel-id",
        "chan-1",
        "--token-exp-seconds",
        "0x10",
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert list(out) == [*BUILD, "grant_client", "grant_server"]
    client = decode_grant_client_json(result.stdout)
    server = decode_grant_server_json(result.stdout)
    assert list(out["grant_client"]) == list(client.to_obj())
    assert client.tunnel_url == "ws://127.0.0.1:8080/ws"
    assert client.channel_id == server.channel_id == "chan-1"
    assert client.allowed_suites == (1,) and client.default_suite == 1
    assert client.idle_timeout_seconds == 60
    assert client.e2ee_psk_b64u == server.e2ee_psk_b64u
    for grant, role in ((client, 1), (server, 2)):
        payload = verify_token(
            grant.token,
            keyset,
            audience="flowersec-tunnel:dev",
            issuer="issuer-dev",
            skew_seconds=0,
            now=payload_time(grant.token),
        )
        assert payload.role == role
        assert payload.exp - payload.iat == 16
        assert payload.init_exp == grant.channel_init_expire_at_unix_s
        assert before - 1 <= payload.iat <= time.time()


def payload_time(token: str) -> int:
    iat: int = json.loads(b64u_decode(token.split(".")[1]))["iat"]
    return iat


def test_channelinit_env_precedence_and_jwt(
    run_tool: Any, key_file: Path, keyset: dict[str, bytes]
) -> None:
    env = {
        "FSEC_ISSUER_PRIVATE_KEY_FILE": str(key_file),
        "FSEC_TUNNEL_URL": "ws://env/ws",
        "FSEC_TUNNEL_AUD": "env-aud",
        "FSEC_ISSUER_ID": "fallback-iss",
        "FSEC_CHANNEL_ID": " env-chan ",
        "FSEC_CHANNELINIT_IDLE_TIMEOUT_SECONDS": str(2**32 + 5),
        "FSEC_CHANNELINIT_TOKEN_FORMAT": "jwt",
    }
    result = run_tool(CHANNELINIT, "--aud", "flag-aud", env=env)
    assert result.code == 0, result.stderr
    grant = decode_grant_client_json(result.stdout)
    assert (grant.tunnel_url, grant.channel_id) == ("ws://env/ws", "env-chan")
    assert grant.idle_timeout_seconds == 5
    assert grant.token.startswith("eyJ")
    payload = verify_token(
        grant.token,
        keyset,
        audience="flag-aud",
        issuer="fallback-iss",
        skew_seconds=0,
        now=payload_time(grant.token),
    )
    assert payload.idle_timeout_seconds == 5
    env["FSEC_TUNNEL_ISS"] = "primary-iss"
    result = run_tool(
        CHANNELINIT, "--idle-timeout-seconds=0", "--token-format=fst2", env=env
    )
    grant = decode_grant_server_json(result.stdout)
    assert grant.idle_timeout_seconds == 60
    assert grant.token.startswith("FST2.")
    claims = json.loads(b64u_decode(grant.token.split(".")[1]))
    assert (claims["iss"], claims["aud"]) == ("primary-iss", "env-aud")
    assert len(decode_grant_client_json(result.stdout).channel_id) == len("env-chan")


def test_channelinit_out_file(run_tool: Any, key_file: Path, tmp_path: Path) -> None:
    args = ["--issuer-private-key-file", str(key_file), "--tunnel-url", "ws://x/ws"]
    args += ["--aud", "a", "--iss", "i", "--out", "pair.json"]
    result = run_tool(CHANNELINIT, *args)
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    out = tmp_path / "pair.json"
    assert mode_of(out) == 0o600
    text = out.read_text()
    assert not text.endswith("\n")
    first = decode_grant_client_json(text)
    assert len(first.channel_id) == 32
    result = run_tool(CHANNELINIT, *args)
    assert result.code == 2
    assert result.stderr == (
        "refusing to overwrite existing file: pair.json (use --overwrite)\n"
    )
    assert out.read_text() == text
    result = run_tool(CHANNELINIT, *args, "--overwrite", "--pretty")
    assert result.code == 0, result.stderr
    assert out.read_text().startswith('{\n  "version": ')
    assert decode_grant_client_json(out.read_text()).token != first.token


def test_channelinit_failures(run_tool: Any, tmp_path: Path) -> None:
    args = ["--tunnel-url", "ws://x/ws", "--aud", "a", "--iss", "i"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"kid":"k1","privkey_b64u":"AAAA"}')
    result = run_tool(CHANNELINIT, "--issuer-private-key-file", str(broken), *args)
    assert result.code == 1
    assert "64 bytes" in result.stderr and result.stdout == ""
    result = run_tool(CHANNELINIT, "--issuer-private-key-file", "absent.json", *args)
    assert result.code == 1
    result = run_tool(
        CHANNELINIT, "--issuer-private-key-file", "k", *args, "--token-format", "paseto"
    )
    assert result.code == 2
    assert result.stderr.startswith("invalid --token-format")
    result = run_tool(CHANNELINIT, env={"FSEC_CHANNELINIT_TOKEN_EXP_SECONDS": "0x10"})
    assert result.code == 2
    assert result.stderr == (
        "invalid FSEC_CHANNELINIT_TOKEN_EXP_SECONDS: "
        'strconv.Atoi: parsing "0x10": invalid syntax\n'
    )


# flowersec-directinit


def test_directinit(run_tool: Any) -> None:
    before = int(time.time())
    result = run_tool(
        DIRECTINIT, "--ws-url", "ws://127.0.0.1:9/ws", "--suite", " P-256 "
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert list(out) == [
        *BUILD,
        "ws_url",
        "channel_id",
        "e2ee_psk_b64u",
        "channel_init_expire_at_unix_s",
        "default_suite",
    ]
    assert out["default_suite"] == 2
    assert len(b64u_decode(out["e2ee_psk_b64u"], canonical=True)) == 32
    assert len(out["channel_id"]) == 32
    assert before + 60 <= out["channel_init_expire_at_unix_s"] <= time.time() + 60


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        ("", 1),
        ("1", 1),
        ("X25519", 1),
        ("suite_x25519_hkdf_sha256_aes_256_gcm", 1),
        ("p_256", 2),
        ("P256_HKDF_SHA256_AES_256_GCM", 2),
    ],
)
def test_directinit_suites_in_process(
    suite: str,
    expected: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flowersec_tunnel.issuer_cli import directinit_main

    for name in list(os.environ):
        if name.startswith("FSEC_"):
            monkeypatch.delenv(name)
    assert directinit_main(["--ws-url=ws://x", f"--suite={suite}"]) == 0
    assert json.loads(capsys.readouterr().out)["default_suite"] == expected


def test_directinit_env_and_errors(run_tool: Any, tmp_path: Path) -> None:
    psk = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
    env = {
        "FSEC_DIRECT_WS_URL": "ws://env/ws",
        "FSEC_DIRECT_CHANNEL_ID": "c1",
        "FSEC_DIRECT_PSK_B64U": psk,
        "FSEC_DIRECT_SUITE": "2",
        "FSEC_DIRECT_INIT_EXP_SECONDS": "5",
        "FSEC_DIRECT_OUT": "info.json",
    }
    result = run_tool(DIRECTINIT, "--suite", "x25519", env=env)
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    info = json.loads((tmp_path / "info.json").read_text())
    assert (info["ws_url"], info["channel_id"], info["e2ee_psk_b64u"]) == (
        "ws://env/ws",
        "c1",
        psk,
    )
    assert info["default_suite"] == 1
    for args, message in (
        ((), "refusing to overwrite existing file: info.json (use --overwrite)"),
        (("--ws-url", " "), "missing --ws-url"),
        (("--psk-b64u", psk[:-1]), "invalid --psk-b64u"),
        (("--psk-b64u", psk + "="), "invalid --psk-b64u"),
        (("--suite", "aes"), "invalid --suite"),
        (("--init-exp-seconds", "0"), "--init-exp-seconds must be > 0"),
    ):
        result = run_tool(DIRECTINIT, *args, env=env)
        assert result.code == 2, args
        assert result.stderr.startswith(message), result.stderr


@pytest.mark.parametrize("main", [KEYGEN, CHANNELINIT, DIRECTINIT])
def test_help_and_version(run_tool: Any, main: str, tmp_path: Path) -> None:
    result = run_tool(main, "-h")
    assert (result.code, result.stdout) == (0, "")
    assert result.stderr.startswith("Usage of flowersec-")
    result = run_tool(main, "--version")
    assert result.code == 0
    assert result.stdout.count("\n") == 1 and result.stdout.strip()
    assert list(tmp_path.iterdir()) == []


def test_installed_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("flowersec-directinit")
    if not script.exists():
        pytest.skip("console scripts not installed next to the interpreter")
    proc = subprocess.run(
        [str(script), "--ws-url", "ws://127.0.0.1:1/ws"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ws_url"] == "ws://127.0.0.1:1/ws"
