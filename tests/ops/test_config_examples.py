"""The config/ examples load into the daemon's own config code as documented."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from flowersec_tunnel import config

REPO = Path(__file__).resolve().parents[2]
TOML_EXAMPLE = REPO / "config" / "tunnel.toml.example"
ENV_EXAMPLE = REPO / "config" / "tunnel.env.example"
# Settings without a default: the examples hold placeholders for them.
REQUIRED = {"issuer_keys_file", "aud", "iss", "allow_origin"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("FSEC_"):
            monkeypatch.delenv(name)


def test_toml_example_holds_every_setting_with_its_default() -> None:
    values = config.load_toml(str(TOML_EXAMPLE))
    defaults = vars(config.build_parser().parse_args([]))
    settable = set(defaults) - {"config", "version"}
    assert set(values) == settable
    for key in settable - REQUIRED:
        assert values[key] == defaults[key], key


def test_toml_example_runs_as_a_config_file() -> None:
    cfg, _ = config.parse(["--config", str(TOML_EXAMPLE)])
    cfg.validate()
    assert cfg.allow_origin == ("https://app.example.com",)
    assert cfg.write_timeout == 10.0


def test_env_example_names_only_variables_the_daemon_reads(
    env_file_parser: Callable[[Path], dict[str, str]],
) -> None:
    source = inspect.getsource(config)
    for name in env_file_parser(ENV_EXAMPLE):
        assert f'"{name}"' in source, name


def test_env_example_parses(
    env_file_parser: Callable[[Path], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = env_file_parser(ENV_EXAMPLE)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg, _ = config.parse([])
    cfg.validate()
    assert cfg.listen == env["FSEC_TUNNEL_LISTEN"]
    assert cfg.issuer_keys_file == env["FSEC_TUNNEL_ISSUER_KEYS_FILE"]
    assert cfg.metrics_listen == env["FSEC_TUNNEL_METRICS_LISTEN"]
    assert cfg.max_conns == config.DEFAULT_MAX_CONNS


def test_env_and_toml_examples_agree(
    env_file_parser: Callable[[Path], dict[str, str]],
) -> None:
    env = env_file_parser(ENV_EXAMPLE)
    toml_keys = set(config.load_toml(str(TOML_EXAMPLE)))
    env_keys = {
        name.removeprefix("FSEC_TUNNEL_").lower()
        for name in env
        if name != "FSEC_TUNNEL_CONFIG"
    }
    # --pretty and --dev have no environment variable in the reference.
    assert env_keys == toml_keys - {"pretty", "dev"}
