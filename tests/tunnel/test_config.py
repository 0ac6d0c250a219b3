"""Flags, FSEC_TUNNEL_* variables and the TOML file: names and precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowersec_tunnel.config import TunnelConfig, parse

REQUIRED = ["--issuer-keys-file", "k.json", "--aud", "a", "--iss", "i"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("FSEC_TUNNEL_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    cfg, _ = parse([*REQUIRED, "--allow-origin", "x"])
    assert cfg == TunnelConfig(
        issuer_keys_file="k.json", aud="a", iss="i", allow_origin=("x",)
    )


def test_flag_beats_env_beats_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "t.toml"
    toml.write_text(
        'listen = "127.0.0.1:1"\nws_path = "/toml"\nmax_conns = 7\n'
        'write_timeout = "3s"\nallow_origin = ["toml.example"]\n'
        "allow_no_origin = true\n"
    )
    monkeypatch.setenv("FSEC_TUNNEL_WS_PATH", " /env ")
    monkeypatch.setenv("FSEC_TUNNEL_MAX_CONNS", "9")
    monkeypatch.setenv("FSEC_TUNNEL_ALLOW_ORIGIN", "a.example, ,b.example")
    cfg, _ = parse(
        [*REQUIRED, "--config", str(toml), "--max-conns=0x10", "-allow-origin", "c"]
    )
    assert cfg.listen == "127.0.0.1:1"
    assert cfg.ws_path == "/env"
    assert cfg.max_conns == 16
    assert cfg.write_timeout == 3.0
    assert cfg.allow_origin == ("a.example", "b.example", "c")
    assert cfg.allow_no_origin is True


def test_config_from_env_and_unknown_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "t.toml"
    toml.write_text('aud = "from-file"\nallow_origin = "x,y"\n')
    monkeypatch.setenv("FSEC_TUNNEL_CONFIG", str(toml))
    cfg, _ = parse(["--issuer-keys-file", "k", "--iss", "i"])
    assert cfg.aud == "from-file"
    assert cfg.allow_origin == ("x", "y")
    toml.write_text('ausience = "typo"\n')
    with pytest.raises(SystemExit) as exc:
        parse(REQUIRED)
    assert exc.value.code == 2
    assert "unknown key 'ausience'" in capsys.readouterr().err


def test_values_normalised() -> None:
    cfg, _ = parse(
        [
            *REQUIRED,
            "--allow-origin=x",
            "--max-conns=-1",
            "--max-channels=0",
            "--max-total-pending-bytes=-5",
            "--write-timeout=-1s",
            "--max-write-queue-bytes=0",
        ]
    )
    assert (cfg.max_conns, cfg.max_channels) == (12000, 6000)
    assert cfg.max_total_pending_bytes == 0
    assert cfg.write_timeout == 0.0
    assert cfg.max_write_queue_bytes == 1048576


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--allow-origin=x"], {}, "missing --issuer-keys-file, --aud, or --iss"),
        (
            [*REQUIRED, "--allow-origin=x", "--tls-cert-file=c"],
            {},
            "tls requires both --tls-cert-file and --tls-key-file",
        ),
        (REQUIRED, {}, "missing --allow-origin"),
        (REQUIRED, {"FSEC_TUNNEL_MAX_CONNS": "0x10"}, "invalid FSEC_TUNNEL_MAX_CONNS"),
        (
            REQUIRED,
            {"FSEC_TUNNEL_WRITE_TIMEOUT": "10"},
            "invalid FSEC_TUNNEL_WRITE_TIMEOUT",
        ),
        (
            REQUIRED,
            {"FSEC_TUNNEL_ALLOW_NO_ORIGIN": "yes"},
            "invalid FSEC_TUNNEL_ALLOW_NO_ORIGIN",
        ),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_dev_defaults_and_overrides() -> None:
    cfg, _ = parse(["--dev"])
    assert cfg.listen == "127.0.0.1:8080"
    assert (cfg.aud, cfg.iss) == ("flowersec-tunnel:dev", "issuer-dev")
    assert cfg.allow_origin == ("127.0.0.1", "localhost", "::1")
    cfg, _ = parse(["--dev", "--listen", "127.0.0.1:0", "--aud", "mine"])
    assert cfg.listen == "127.0.0.1:0"
    assert cfg.aud == "mine"


def test_shipped_examples_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[2] / "config"
    toml = root / "tunnel.toml.example"
    env_file = root / "tunnel.env.example"
    if not toml.exists() or not env_file.exists():
        pytest.skip("config examples are not in this checkout")
    from_file, _ = parse(["--config", str(toml)])
    assert from_file.aud == "flowersec-tunnel:prod"
    assert from_file.write_timeout == 10.0
    for line in env_file.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
    from_env, _ = parse([])
    assert from_env.metrics_listen == "127.0.0.1:9090"
    assert from_env.allow_origin == ("https://app.example.com",)
    assert from_env.issuer_keys_file == "/etc/flowersec/issuer_keys.json"
