"""Go-compatible flag, env and value parsing."""

from __future__ import annotations

import contextlib
import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_tunnel.goflags import (
    GoFlagParser,
    env_value,
    go_trim,
    parse_bool,
    parse_duration,
    parse_int,
    version_line,
    write_output,
)
from flowersec_tunnel.jsonfile import RefuseOverwriteError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("-0", 0.0),
        ("+0", 0.0),
        ("1.5s", 1.5),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("10s", 10.0),
        ("2h", 7200.0),
        ("1h1m1s1ms1us1ns", 3661.001001001),
        ("1µs", 1e-6),
        ("1μs", 1e-6),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("-1.5m", -90.0),
        ("0s", 0.0),
        ("9223372036854775807ns", 9223372036.854775807),
        ("-9223372036854775808ns", -9223372036.854775808),
    ],
)
def test_duration_ok(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("00", 'time: missing unit in duration "00"'),
        ("1.", 'time: missing unit in duration "1."'),
        ("s", 'time: invalid duration "s"'),
        (".s", 'time: invalid duration ".s"'),
        ("-", 'time: invalid duration "-"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1S", 'time: unknown unit "S" in duration "1S"'),
        ("1 s", 'time: unknown unit " s" in duration "1 s"'),
        ("1s ", 'time: unknown unit "s " in duration "1s "'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("3000000h", 'time: invalid duration "3000000h"'),
    ],
)
def test_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_bool_true(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_bool_false(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "yes", "tRUE", " true", "2", "on"])
def test_bool_errors(text: str) -> None:
    with pytest.raises(ValueError, match=r"strconv\.ParseBool"):
        parse_bool(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-42", -42),
        ("+7", 7),
        ("0x1F", 31),
        ("0X1f", 31),
        ("0o17", 15),
        ("017", 15),
        ("0b101", 5),
        ("1_000", 1000),
        ("0x_ff", 255),
        ("0_7", 7),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_int_flag_syntax(text: str, value: int) -> None:
    assert parse_int(text, prefixes=True) == value


@pytest.mark.parametrize(
    "text", ["", "x", "08", "0x", "1_", "_1", "1__0", "0b2", "1.0", " 1", "1e3", "٣"]
)
def test_int_flag_syntax_errors(text: str) -> None:
    with pytest.raises(ValueError, match="invalid syntax"):
        parse_int(text, prefixes=True)


def test_int_ranges_and_env_syntax() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_int("9223372036854775808", prefixes=True)
    with pytest.raises(ValueError, match="out of range"):
        parse_int("-9223372036854775809", prefixes=False)
    assert parse_int("007", prefixes=False) == 7
    assert parse_int("-5", prefixes=False) == -5
    for text in ("0x10", "1_000", "", "+", "1 "):
        with pytest.raises(ValueError, match=r"strconv\.Atoi"):
            parse_int(text, prefixes=False)


@given(st.text(max_size=30))
def test_fuzz_value_parsers_raise_only_value_error(text: str) -> None:
    for parse in (
        parse_duration,
        parse_bool,
        lambda t: parse_int(t, prefixes=True),
        lambda t: parse_int(t, prefixes=False),
    ):
        with contextlib.suppress(ValueError):
            parse(text)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_fuzz_int_round_trip(value: int) -> None:
    assert parse_int(str(value), prefixes=False) == value
    assert parse_int(hex(value), prefixes=True) == value
    assert parse_int(bin(value), prefixes=True) == value


def test_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FSEC_A", "  \t ")
    monkeypatch.setenv("FSEC_B", " b\n")
    monkeypatch.delenv("FSEC_C", raising=False)
    assert env_value("FSEC_A", "FSEC_B") == "b"
    assert env_value("FSEC_C") is None
    assert env_value("FSEC_A") is None
    assert go_trim("\u00a0x\u3000") == "x"


def make_parser() -> GoFlagParser:
    parser = GoFlagParser("tool")
    parser.add_string("aud", "", "audience", env=("FSEC_T_AUD",))
    parser.add_string("kid", "k1", "key id", env=("FSEC_T_KID", "FSEC_T_KID2"))
    parser.add_int("max-conns", 0, "max conns", env=("FSEC_T_MAX",))
    parser.add_bool("allow-no-origin", "allow", env=("FSEC_T_ANO",))
    parser.add_duration("write-timeout", 10.0, "timeout", env=("FSEC_T_WT",))
    parser.add_list("allow-origin", "origins", env=("FSEC_T_ORIGINS",))
    parser.add_bool("pretty", "pretty")
    parser.add_version()
    return parser


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AUD", "KID", "KID2", "MAX", "ANO", "WT", "ORIGINS"):
        monkeypatch.delenv(f"FSEC_T_{name}", raising=False)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    args = make_parser().parse_args([])
    assert vars(args) == {
        "aud": "",
        "kid": "k1",
        "max_conns": 0,
        "allow_no_origin": False,
        "write_timeout": 10.0,
        "allow_origin": [],
        "pretty": False,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["-aud", "x", "-max-conns", "0x10", "-allow-no-origin", "-write-timeout", "1m"],
        ["--aud=x", "--max-conns=16", "--allow-no-origin=true", "--write-timeout=60s"],
        ["--aud", "x", "-max-conns=020", "-allow-no-origin=1", "--write-timeout", "1m"],
    ],
)
def test_flag_forms(clean_env: pytest.MonkeyPatch, argv: list[str]) -> None:
    args = make_parser().parse_args(argv)
    assert (args.aud, args.max_conns, args.allow_no_origin, args.write_timeout) == (
        "x",
        16,
        True,
        60.0,
    )


def test_values_starting_with_dash_and_bool_false(
    clean_env: pytest.MonkeyPatch,
) -> None:
    args = make_parser().parse_args(
        ["--aud", "-x", "--max-conns", "-3", "--pretty", "--pretty=false"]
    )
    assert (args.aud, args.max_conns, args.pretty) == ("-x", -3, False)
    assert make_parser().parse_args(["--aud="]).aud == ""
    assert make_parser().parse_args(["--aud=a=b c"]).aud == "a=b c"


def test_env_defaults_and_precedence(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FSEC_T_AUD", " env-aud ")
    clean_env.setenv("FSEC_T_KID", " ")
    clean_env.setenv("FSEC_T_KID2", "k2")
    clean_env.setenv("FSEC_T_MAX", "12")
    clean_env.setenv("FSEC_T_ANO", "T")
    clean_env.setenv("FSEC_T_WT", "2s")
    clean_env.setenv("FSEC_T_ORIGINS", " a.example , ,b.example,")
    args = make_parser().parse_args([])
    assert (args.aud, args.kid, args.max_conns) == ("env-aud", "k2", 12)
    assert (args.allow_no_origin, args.write_timeout) == (True, 2.0)
    assert args.allow_origin == ["a.example", "b.example"]
    args = make_parser().parse_args(
        [
            "--aud",
            "flag",
            "--allow-no-origin=false",
            "--allow-origin",
            "c",
            "--max-conns=1",
        ]
    )
    assert (args.aud, args.allow_no_origin, args.max_conns) == ("flag", False, 1)
    assert args.allow_origin == ["a.example", "b.example", "c"]


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("FSEC_T_MAX", "0x10", 'invalid FSEC_T_MAX: strconv.Atoi: parsing "0x10"'),
        ("FSEC_T_ANO", "yes", 'invalid FSEC_T_ANO: strconv.ParseBool: parsing "yes"'),
        ("FSEC_T_WT", "10", 'invalid FSEC_T_WT: time: missing unit in duration "10"'),
    ],
)
def test_bad_env_exits_2_before_flags(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    var: str,
    value: str,
    message: str,
) -> None:
    clean_env.setenv(var, f" {value} ")
    with pytest.raises(SystemExit) as info:
        make_parser().parse_args(["--help"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert "Usage of" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nope"], "flag provided but not defined: -nope"),
        (["-nope=1"], "flag provided but not defined: -nope"),
        (["--max-conns=x"], 'invalid value "x" for flag -max-conns: parse error'),
        (["--write-timeout", "5"], 'invalid value "5" for flag -write-timeout'),
        (["--pretty=maybe"], 'invalid boolean value "maybe" for -pretty: parse error'),
        (["--aud"], "flag needs an argument: -aud"),
        (["stray"], "unexpected argument: stray"),
        (["--", "--aud"], "unexpected argument: --aud"),
        (["-", "--aud=x"], "unexpected argument: -"),
        (["---aud=x"], "flag provided but not defined: -aud"),
    ],
)
def test_usage_errors_exit_2(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as info:
        make_parser().parse_args(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(message)
    assert "\nUsage of tool:\n" in err


@pytest.mark.parametrize("flag", ["-h", "-help", "--help"])
def test_help_exits_0_on_stderr(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    with pytest.raises(SystemExit) as info:
        make_parser().parse_args(["--aud=x", flag])
    assert info.value.code == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("Usage of tool:\n")
    assert '  -kid string\n    \tkey id (default "k1")\n' in err
    assert "  -write-timeout duration\n    \ttimeout (default 10s)\n" in err
    assert "  -pretty\n" in err


def test_usage_error_helper(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        make_parser().usage_error("missing --aud")
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("missing --aud\nUsage of tool:\n")


def test_version(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        make_parser().parse_args(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == version_line() + "\n"
    assert version_line() and "\n" not in version_line()


def test_redefined_flag() -> None:
    parser = GoFlagParser("x")
    parser.add_string("a", "", "a")
    with pytest.raises(ValueError):
        parser.add_bool("a", "again")


def test_write_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obj = {"b": "<&>", "a": [1]}
    write_output(obj, out="", overwrite=False, pretty=False)
    assert capsys.readouterr().out == '{"b":"\\u003c\\u0026\\u003e","a":[1]}\n'
    write_output(obj, out="", overwrite=False, pretty=True)
    assert capsys.readouterr().out == (
        '{\n  "b": "\\u003c\\u0026\\u003e",\n  "a": [\n    1\n  ]\n}\n'
    )
    target = tmp_path / "out.json"
    write_output(obj, out=str(target), overwrite=False, pretty=True)
    assert capsys.readouterr().out == ""
    assert json.loads(target.read_text()) == obj
    assert not target.read_text().endswith("\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(RefuseOverwriteError):
        write_output({}, out=str(target), overwrite=False, pretty=False)
    write_output({}, out=str(target), overwrite=True, pretty=False)
    assert target.read_text() == "{}"
