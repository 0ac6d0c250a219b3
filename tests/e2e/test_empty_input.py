"""Empty and malformed JSON inputs: ``validate/invalid_input`` with a clear text.

Every JSON entry point (the grant and info decoders, ``connect``'s input
detection and the demo's ``--grant``/``--info`` files) says "empty input"
for nothing but whitespace, and never passes a Python parser message on.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Any

import pytest

from flowersec_endpoint import grants, inputs
from flowersec_endpoint.demo.roles import read_json_input
from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage

DEMO = str(FilePath(sys.executable).with_name("flowersec-demo"))
EMPTY: list[Any] = ["", "  \n\t ", b"", b"\n", io.BytesIO(b"  "), bytearray()]
DECODERS: list[tuple[Callable[[Any], object], Path]] = [
    (grants.decode_grant_json, Path.TUNNEL),
    (grants.decode_grant_client_json, Path.TUNNEL),
    (grants.decode_grant_server_json, Path.TUNNEL),
    (grants.decode_direct_connect_info_json, Path.DIRECT),
    (inputs.detect, Path.AUTO),
]


def _raised(decode: Callable[[Any], object], data: Any) -> FlowersecError:
    with pytest.raises(FlowersecError) as info:
        decode(data)
    return info.value


@pytest.mark.parametrize(("decode", "path"), DECODERS)
@pytest.mark.parametrize("data", EMPTY)
def test_empty_input(decode: Callable[[Any], object], path: Path, data: Any) -> None:
    if isinstance(data, io.BytesIO):
        data.seek(0)
    error = _raised(decode, data)
    assert (error.path, error.stage, error.code) == (
        path,
        Stage.VALIDATE,
        Code.INVALID_INPUT,
    )
    assert error.message == "empty input"


@pytest.mark.parametrize(("decode", "path"), DECODERS)
@pytest.mark.parametrize("text", ['{"a": ', "{\n  1}", '{"a": 1} x'])
def test_malformed_json_names_the_place(
    decode: Callable[[Any], object], path: Path, text: str
) -> None:
    error = _raised(decode, text)
    assert (error.path, error.code) == (path, Code.INVALID_INPUT)
    assert error.message.startswith("invalid JSON at line ")
    assert "Expecting" not in str(error)
    assert "JSONDecodeError" not in str(error)


@pytest.mark.parametrize("text", ["", " \n\n", '{"a":', "[1]\n"])
def test_demo_reader_errors(text: str) -> None:
    with pytest.raises(FlowersecError) as info:
        read_json_input("-", io.StringIO(text), path=Path.DIRECT)
    error = info.value
    assert (error.path, error.stage, error.code) == (
        Path.DIRECT,
        Stage.VALIDATE,
        Code.INVALID_INPUT,
    )
    assert error.message.startswith("-: ")
    if not text.strip():
        assert error.message == "-: empty input"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FSEC_")}


@pytest.mark.parametrize(
    ("command", "flag", "path"),
    [
        ("client", "--grant", "tunnel"),
        ("server", "--grant", "tunnel"),
        ("direct-client", "--info", "direct"),
    ],
)
def test_demo_empty_file(
    tmp_path: FilePath, command: str, flag: str, path: str
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(" \n")
    result = subprocess.run(
        [DEMO, command, flag, str(empty), "--origin", "http://127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(),
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"flowersec-demo: {path} validate (invalid_input): {empty}: empty input\n"
    )
