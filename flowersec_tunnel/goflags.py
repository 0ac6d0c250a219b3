"""Go-compatible command lines for the tunnel and the issuer tools.

Operators swap our binaries in for the reference ones without touching their
scripts, so flags, environment defaults, value syntax, help and exit codes
follow Go's ``flag`` package and tunnel.md §0.3 and §3.4.

The value parsers raise ``ValueError`` whose text is the Go error text
(``strconv.ParseBool: parsing "x": invalid syntax``, ``time: invalid
duration "x"``), because that text ends up in ``invalid <VAR>: <error>``.

A command line is built with :class:`GoFlagParser`, an ``argparse`` parser
whose ``add_*`` helpers declare one Go-style flag each, optionally with the
environment variables that provide its default::

    parser = GoFlagParser("flowersec-tunnel")
    parser.add_string("listen", "127.0.0.1:0", "listen address",
                      env=("FSEC_TUNNEL_LISTEN",))
    parser.add_int("max-conns", 0, "max connections", env=("FSEC_TUNNEL_MAX_CONNS",))
    parser.add_bool("allow-no-origin", "allow a missing Origin",
                    env=("FSEC_TUNNEL_ALLOW_NO_ORIGIN",))
    parser.add_duration("write-timeout", 10.0, "write timeout",
                        env=("FSEC_TUNNEL_WRITE_TIMEOUT",))
    parser.add_list("allow-origin", "allowed Origin (repeatable)",
                    env=("FSEC_TUNNEL_ALLOW_ORIGIN",))
    parser.add_version()
    args = parser.parse_args(argv)   # dest: dashes become underscores
    if not args.aud:
        parser.usage_error("missing --aud")   # message + usage, exit 2

``parse_args`` first reads every declared environment variable (trimmed,
empty means unset; the first bad one prints ``invalid <VAR>: <error>`` and
exits 2), then the flags: ``-name`` or ``--name``, ``--name value`` or
``--name=value`` (a value may start with ``-``), boolean flags as ``--name``
or ``--name=<bool>``, integer flags with Go base prefixes. ``-h``, ``-help``
and ``--help`` print the Go-style usage to stderr and exit 0; an unknown
flag, a bad value or a stray argument prints the error plus usage to stderr
and exits 2. ``--version`` prints :func:`version_line` and exits 0.
Positional arguments are rejected (the reference ignores them silently).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from flowersec_tunnel.jsonfile import dumps_json, write_file

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

# Build stamps: a release build may rewrite these two constants; "unknown"
# means "not stamped" and is left out of the version line.
BUILD_COMMIT = "unknown"
BUILD_DATE = "unknown"

_GO_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
_GO_SPACE += "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

_GO_INT = re.compile(
    r"[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+"
    r"|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)"
)
_DEC_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DIGITS = "0123456789"


def _quote(text: str) -> str:
    """Quote like Go's ``%q`` for the printable text these errors carry."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def go_trim(text: str) -> str:
    """Trim whitespace like Go's ``strings.TrimSpace``."""
    return text.strip(_GO_SPACE)


def parse_bool(text: str) -> bool:
    """Parse a Go boolean (``strconv.ParseBool``)."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"strconv.ParseBool: parsing {_quote(text)}: invalid syntax")


def parse_int(text: str, *, prefixes: bool) -> int:
    """Parse a signed 64-bit integer the way Go's flags or env readers do.

    ``prefixes=True`` is ``strconv.ParseInt(s, 0, 64)`` (flags: ``0x``,
    ``0o``, ``0b``, a leading ``0`` for octal, ``_`` between digits);
    ``prefixes=False`` is ``strconv.Atoi`` (env vars: plain decimal).
    """
    func = "strconv.ParseInt" if prefixes else "strconv.Atoi"
    if not (_GO_INT if prefixes else _DEC_INT).fullmatch(text):
        raise ValueError(f"{func}: parsing {_quote(text)}: invalid syntax")
    value = _int_value(text) if prefixes else int(text, 10)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{func}: parsing {_quote(text)}: value out of range")
    return value


def _int_value(text: str) -> int:
    """Convert text already matched by ``_GO_INT`` (legacy ``0`` octal too)."""
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").replace("_", "")
    base = {"x": 16, "o": 8, "b": 2}.get(digits[1:2].lower(), 8)
    if len(digits) > 1 and digits[1] in "xXoObB":
        digits = digits[2:]
    elif not digits.startswith("0"):
        base = 10
    return sign * int(digits, base)


def _leading_int(text: str) -> tuple[int, str]:
    end = 0
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    return (int(text[:end]) if end else 0), text[end:]


def parse_duration(text: str) -> float:
    """Parse a Go duration (``time.ParseDuration``) into seconds.

    The arithmetic is Go's (integer nanoseconds, fractions through float64,
    the signed 64-bit range), so a value accepted here means the same to the
    reference.
    """
    invalid = ValueError(f"time: invalid duration {_quote(text)}")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if rest[0] != "." and rest[0] not in _DIGITS:
            raise invalid
        before = len(rest)
        whole, rest = _leading_int(rest)
        has_whole = len(rest) != before
        fraction, scale, has_fraction = 0, 1.0, False
        if rest[:1] == ".":
            rest = rest[1:]
            before = len(rest)
            digits, rest = _leading_fraction(rest)
            fraction, scale = digits
            has_fraction = len(rest) != before
        if not (has_whole or has_fraction):
            raise invalid
        end = 0
        while end < len(rest) and rest[end] != "." and rest[end] not in _DIGITS:
            end += 1
        if end == 0:
            raise ValueError(f"time: missing unit in duration {_quote(text)}")
        unit_name, rest = rest[:end], rest[end:]
        unit = _UNITS_NS.get(unit_name)
        if unit is None:
            raise ValueError(
                f"time: unknown unit {_quote(unit_name)} in duration {_quote(text)}"
            )
        if whole > 2**63 // unit:
            raise invalid
        value = whole * unit
        if fraction > 0:
            value += math.trunc(float(fraction) * (float(unit) / scale))
            if value > 2**63:
                raise invalid
        total += value
        if total > 2**63:
            raise invalid
    if negative:
        return -total / 1e9
    if total > _INT64_MAX:
        raise invalid
    return total / 1e9


def _leading_fraction(text: str) -> tuple[tuple[int, float], str]:
    """Read fraction digits as Go does: stop accumulating before overflow."""
    value, scale, overflow, end = 0, 1.0, False, 0
    while end < len(text) and text[end] in _DIGITS:
        if not overflow:
            if value > (2**63 - 1) // 10:
                overflow = True
            else:
                candidate = value * 10 + int(text[end])
                if candidate > 2**63:
                    overflow = True
                else:
                    value = candidate
                    scale *= 10
        end += 1
    return (value, scale), text[end:]


def env_lookup(*names: str) -> tuple[str, str] | None:
    """Return ``(name, trimmed value)`` of the first variable set non-empty."""
    for name in names:
        value = go_trim(os.environ.get(name, ""))
        if value:
            return name, value
    return None


def env_value(name: str, *fallbacks: str) -> str | None:
    """Return the trimmed non-empty value of the first set variable."""
    found = env_lookup(name, *fallbacks)
    return None if found is None else found[1]


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """Raw build values as printed in JSON outputs and the ready line."""

    version: str
    commit: str
    date: str


def build_info() -> BuildInfo:
    """Return the build values; the version is the installed package's."""
    try:
        version = metadata.version("flowersec")
    except metadata.PackageNotFoundError:
        version = "dev"
    return BuildInfo(version=version, commit=BUILD_COMMIT, date=BUILD_DATE)


def version_line() -> str:
    """Return the ``--version`` line: ``<version>[ (<commit>)][ <date>]``."""
    info = build_info()
    line = info.version
    if info.commit != "unknown":
        line += f" ({info.commit})"
    if info.date != "unknown":
        line += f" {info.date}"
    return line


def write_output(
    obj: Mapping[str, Any],
    *,
    out: str,
    overwrite: bool,
    pretty: bool,
    stdout: TextIO | None = None,
) -> None:
    """Emit a tool's JSON result (tunnel.md §3.4).

    Without ``out`` the JSON goes to stdout newline-terminated; with it the
    file gets the same JSON without the newline, mode 0600, and stdout stays
    empty. Raises :class:`~flowersec_tunnel.jsonfile.RefuseOverwriteError`
    when the file exists and ``overwrite`` is false.
    """
    data = dumps_json(obj, pretty=pretty)
    if out:
        write_file(out, data, mode=0o600, overwrite=overwrite)
        return
    stream = sys.stdout if stdout is None else stdout
    stream.write(data.decode("utf-8") + "\n")
    stream.flush()


@dataclass(frozen=True, slots=True)
class _Flag:
    name: str
    kind: str
    help: str
    default: Any
    env: tuple[str, ...]
    from_env: Callable[[str], Any]


class _GoValue(argparse.Action):
    """Store a converted value; a bad value is a Go-style usage error."""

    invalid = "invalid value {value} for flag -{name}: parse error"

    def __init__(self, *args: Any, convert: Callable[[str], Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.convert = convert

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, str)
        try:
            value = self.convert(values)
        except ValueError:
            name = self.dest.replace("_", "-")
            parser.error(self.invalid.format(value=_quote(values), name=name))
        setattr(namespace, self.dest, value)


class _GoBool(_GoValue):
    """A boolean flag; the normaliser always hands it an explicit value."""

    invalid = "invalid boolean value {value} for -{name}: parse error"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, convert=parse_bool, **kwargs)


class _GoAppend(argparse.Action):
    """A repeatable flag whose values are appended to the env-given list."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, str)
        setattr(namespace, self.dest, [*getattr(namespace, self.dest), values])


class _GoHelp(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        parser.print_help()
        parser.exit(0)


class _GoVersion(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(version_line() + "\n")
        sys.stdout.flush()
        parser.exit(0)


class GoFlagParser(argparse.ArgumentParser):
    """An ``argparse`` parser that speaks Go's flag syntax (see module doc)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog=prog, add_help=False, allow_abbrev=False)
        self._flags: dict[str, _Flag] = {}
        self.add_argument(
            "-h",
            "-help",
            "--help",
            action=_GoHelp,
            nargs=0,
            dest=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )

    def _declare(self, flag: _Flag, **kwargs: Any) -> None:
        if flag.name in self._flags:
            raise ValueError(f"flag redefined: {flag.name}")
        self._flags[flag.name] = flag
        self.add_argument(
            f"-{flag.name}",
            f"--{flag.name}",
            dest=flag.name.replace("-", "_"),
            default=flag.default,
            help=flag.help,
            **kwargs,
        )

    def add_string(
        self, name: str, default: str, help: str, *, env: tuple[str, ...] = ()
    ) -> None:
        """Declare a string flag (value kept as given; callers trim)."""
        flag = _Flag(name, "string", help, default, env, str)
        self._declare(flag)

    def add_int(
        self, name: str, default: int, help: str, *, env: tuple[str, ...] = ()
    ) -> None:
        """Declare a 64-bit integer flag (flag: Go prefixes; env: decimal)."""

        def from_flag(text: str) -> int:
            return parse_int(text, prefixes=True)

        def from_env(text: str) -> int:
            return parse_int(text, prefixes=False)

        flag = _Flag(name, "int", help, default, env, from_env)
        self._declare(flag, action=_GoValue, convert=from_flag)

    def add_duration(
        self, name: str, default: float, help: str, *, env: tuple[str, ...] = ()
    ) -> None:
        """Declare a Go duration flag; the value is in seconds."""
        flag = _Flag(name, "duration", help, default, env, parse_duration)
        self._declare(flag, action=_GoValue, convert=parse_duration)

    def add_bool(
        self,
        name: str,
        help: str,
        *,
        default: bool = False,
        env: tuple[str, ...] = (),
    ) -> None:
        """Declare a boolean flag: ``--name`` or ``--name=<Go bool>``."""
        flag = _Flag(name, "bool", help, default, env, parse_bool)
        self._declare(flag, action=_GoBool)

    def add_list(self, name: str, help: str, *, env: tuple[str, ...] = ()) -> None:
        """Declare a repeatable flag; the env value is a comma-separated list.

        Env items are trimmed and empty ones dropped; flag values are
        appended to the env list, as the reference does.
        """

        def split(text: str) -> list[str]:
            return [item for item in map(go_trim, text.split(",")) if item]

        flag = _Flag(name, "list", help, [], env, split)
        self._declare(flag, action=_GoAppend)

    def add_version(self) -> None:
        """Declare ``--version``: print :func:`version_line`, exit 0."""
        self.add_argument(
            "-version",
            "--version",
            action=_GoVersion,
            nargs=0,
            dest=argparse.SUPPRESS,
            help="print version and exit",
        )

    def _env_defaults(self) -> None:
        for flag in self._flags.values():
            if not flag.env:
                continue
            found = env_lookup(*flag.env)
            if found is None:
                continue
            var, text = found
            try:
                value = flag.from_env(text)
            except ValueError as exc:
                sys.stderr.write(f"invalid {var}: {exc}\n")
                sys.stderr.flush()
                raise SystemExit(2) from None
            self.set_defaults(**{flag.name.replace("-", "_"): value})

    def _normalise(self, argv: Sequence[str]) -> tuple[list[str], list[str]]:
        """Rewrite every known flag into one ``--name=value`` token.

        That is what lets argparse accept Go's forms: a value that starts
        with ``-``, ``-name value`` and bare boolean flags. As in Go, flags
        end at ``--`` or at the first non-flag argument; the arguments from
        there on are returned separately.
        """
        result: list[str] = []
        index = 0
        while index < len(argv):
            token = argv[index]
            index += 1
            if token == "--":
                return result, list(argv[index:])
            if token == "-" or not token.startswith("-"):
                return result, list(argv[index - 1 :])
            match = re.fullmatch(r"--?([^-=][^=]*)(?:=(.*))?", token, re.DOTALL)
            flag = self._flags.get(match.group(1)) if match else None
            if match is None or flag is None:
                result.append(token)
                continue
            value = match.group(2)
            if value is None:
                if flag.kind == "bool":
                    value = "true"
                elif index < len(argv):
                    value = argv[index]
                    index += 1
                else:
                    self.error(f"flag needs an argument: -{flag.name}")
            result.append(f"--{flag.name}={value}")
        return result, []

    def parse_args(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> argparse.Namespace:
        """Apply env defaults, then parse the flags (see module doc)."""
        self._env_defaults()
        argv = sys.argv[1:] if args is None else list(args)
        flags, positionals = self._normalise(argv)
        parsed, unknown = self.parse_known_args(flags, namespace)
        if unknown:
            name = unknown[0].lstrip("-").split("=", 1)[0]
            self.error(f"flag provided but not defined: -{name}")
        if positionals:
            self.error(f"unexpected argument: {positionals[0]}")
        return parsed

    def format_help(self) -> str:
        """Return Go's default usage text: ``Usage of <prog>:`` and the flags."""
        lines = [f"Usage of {self.prog}:"]
        for flag in sorted(self._flags.values(), key=lambda item: item.name):
            head = f"  -{flag.name}"
            if flag.kind not in ("bool",):
                head += " value" if flag.kind == "list" else f" {flag.kind}"
            lines.append(head)
            text = flag.help
            if flag.kind == "string" and flag.default:
                text += f" (default {_quote(flag.default)})"
            elif flag.kind == "int" and flag.default:
                text += f" (default {flag.default})"
            elif flag.kind == "duration" and flag.default:
                text += f" (default {flag.default:g}s)"
            lines.append(f"    \t{text}")
        if any(a.option_strings[-1:] == ["--version"] for a in self._actions):
            lines.extend(["  -version", "    \tprint version and exit"])
        return "\n".join(lines) + "\n"

    def format_usage(self) -> str:
        """Return the same text as :meth:`format_help` (Go has one usage)."""
        return self.format_help()

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        """Print usage to stderr, as Go does, unless told otherwise."""
        stream = sys.stderr if file is None else file
        stream.write(self.format_help())

    def error(self, message: str) -> NoReturn:
        """Print the message and the usage to stderr, exit 2."""
        sys.stderr.write(message + "\n")
        self.print_help()
        raise SystemExit(2)

    def usage_error(self, message: str) -> NoReturn:
        """Report a usage problem found after parsing (message + usage, 2)."""
        self.error(message)
