"""The issuer tools: key generation, grant pairs, direct-connect info.

Drop-in replacements for the reference's ``flowersec-issuer-keygen``,
``flowersec-channelinit`` and ``flowersec-directinit`` (tunnel.md §3.4-3.7):
same flags, environment defaults, outputs and exit codes (0 success, 1
runtime error, 2 usage error). ``flowersec-channelinit`` also takes
``--token-format fst2|jwt`` (env ``FSEC_CHANNELINIT_TOKEN_FORMAT``).
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from flowersec_endpoint.encoding import DecodeError, b64u_decode, b64u_encode
from flowersec_endpoint.grants import SUITE_P256, SUITE_X25519, DirectConnectInfo
from flowersec_tunnel.goflags import (
    GoFlagParser,
    build_info,
    go_trim,
    write_output,
)
from flowersec_tunnel.issuer import PSK_BYTES, mint_grant_pair, random_id
from flowersec_tunnel.jsonfile import RefuseOverwriteError
from flowersec_tunnel.keys import (
    IssuerKey,
    KeyFileError,
    load_issuer_key,
    write_issuer_key,
    write_keyset,
)
from flowersec_tunnel.tokens import FORMAT_FST2, FORMAT_JWT

_SUITES = {
    "": SUITE_X25519,
    "1": SUITE_X25519,
    "x25519": SUITE_X25519,
    "x25519_hkdf_sha256_aes_256_gcm": SUITE_X25519,
    "suite_x25519_hkdf_sha256_aes_256_gcm": SUITE_X25519,
    "2": SUITE_P256,
    "p256": SUITE_P256,
    "p-256": SUITE_P256,
    "p_256": SUITE_P256,
    "p256_hkdf_sha256_aes_256_gcm": SUITE_P256,
    "suite_p256_hkdf_sha256_aes_256_gcm": SUITE_P256,
}


class _RuntimeFailure(Exception):
    """A failure after parsing: message on stderr, exit 1."""


def _build_fields() -> dict[str, Any]:
    info = build_info()
    return {"version": info.version, "commit": info.commit, "date": info.date}


def _run(body: Callable[[], None]) -> int:
    """Map the tools' failures to their exit codes."""
    try:
        body()
    except RefuseOverwriteError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except (_RuntimeFailure, KeyFileError, OSError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


def _add_output_flags(parser: GoFlagParser, out_env: str | None) -> None:
    if out_env is not None:
        parser.add_string(
            "out", "", "write the JSON to this file (mode 0600)", env=(out_env,)
        )
    parser.add_bool("overwrite", "allow replacing existing files")
    parser.add_bool("pretty", "indent the JSON output")
    parser.add_version()


def _int32(value: int) -> int:
    """Go's ``int32(v)``: keep the low 32 bits, two's complement."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def keygen_main(argv: Sequence[str] | None = None) -> int:
    """``flowersec-issuer-keygen``: new issuer key file and keyset file."""
    parser = GoFlagParser("flowersec-issuer-keygen")
    parser.add_string("kid", "k1", "key id", env=("FSEC_ISSUER_KID",))
    parser.add_string("out-dir", ".", "output directory", env=("FSEC_ISSUER_OUT_DIR",))
    parser.add_string(
        "private-key-file",
        "",
        "private key file (default <out-dir>/issuer_key.json)",
        env=("FSEC_ISSUER_PRIVATE_KEY_FILE",),
    )
    parser.add_string(
        "issuer-keys-file",
        "",
        "tunnel keyset file (default <out-dir>/issuer_keys.json)",
        env=("FSEC_ISSUER_KEYS_FILE", "FSEC_TUNNEL_ISSUER_KEYS_FILE"),
    )
    _add_output_flags(parser, None)
    args = parser.parse_args(argv)
    kid = go_trim(args.kid)
    if not kid:
        parser.usage_error("missing --kid")
    out_dir = go_trim(args.out_dir) or "."
    private_path = _under(out_dir, go_trim(args.private_key_file), "issuer_key.json")
    keys_path = _under(out_dir, go_trim(args.issuer_keys_file), "issuer_keys.json")

    def body() -> None:
        if not args.overwrite:
            for path in (private_path, keys_path):
                if os.path.lexists(path):
                    raise RefuseOverwriteError(path)
        os.makedirs(out_dir, mode=0o755, exist_ok=True)
        key = IssuerKey.generate(kid)
        write_issuer_key(private_path, key, overwrite=args.overwrite)
        write_keyset(keys_path, {kid: key.public_key}, overwrite=args.overwrite)
        result = {
            **_build_fields(),
            "kid": kid,
            "private_key_file": os.path.abspath(private_path),
            "issuer_keys_file": os.path.abspath(keys_path),
        }
        write_output(result, out="", overwrite=False, pretty=args.pretty)

    return _run(body)


def _under(out_dir: str, value: str, default_name: str) -> str:
    """Resolve a file flag: default name in ``out_dir``, relative to it.

    Joined and cleaned like Go's ``filepath.Join``, so messages name the
    same path the reference would.
    """
    return os.path.normpath(os.path.join(out_dir, value or default_name))


def channelinit_main(argv: Sequence[str] | None = None) -> int:
    """``flowersec-channelinit``: mint a client/server grant pair."""
    parser = GoFlagParser("flowersec-channelinit")
    parser.add_string(
        "issuer-private-key-file",
        "",
        "issuer private key file (required)",
        env=("FSEC_ISSUER_PRIVATE_KEY_FILE",),
    )
    parser.add_string(
        "tunnel-url", "", "tunnel WebSocket URL (required)", env=("FSEC_TUNNEL_URL",)
    )
    parser.add_string("aud", "", "token audience (required)", env=("FSEC_TUNNEL_AUD",))
    parser.add_string(
        "iss",
        "",
        "token issuer (required)",
        env=("FSEC_TUNNEL_ISS", "FSEC_ISSUER_ID"),
    )
    parser.add_string(
        "channel-id", "", "channel id (default random)", env=("FSEC_CHANNEL_ID",)
    )
    parser.add_int(
        "token-exp-seconds",
        60,
        "token lifetime in seconds",
        env=("FSEC_CHANNELINIT_TOKEN_EXP_SECONDS",),
    )
    parser.add_int(
        "idle-timeout-seconds",
        60,
        "channel idle timeout in seconds",
        env=("FSEC_CHANNELINIT_IDLE_TIMEOUT_SECONDS",),
    )
    parser.add_string(
        "token-format",
        FORMAT_FST2,
        "token format: fst2 or jwt",
        env=("FSEC_CHANNELINIT_TOKEN_FORMAT",),
    )
    _add_output_flags(parser, "FSEC_CHANNELINIT_OUT")
    args = parser.parse_args(argv)
    key_file = go_trim(args.issuer_private_key_file)
    tunnel_url = go_trim(args.tunnel_url)
    audience = go_trim(args.aud)
    issuer = go_trim(args.iss)
    if not (key_file and tunnel_url and audience and issuer):
        parser.usage_error(
            "missing --issuer-private-key-file, --tunnel-url, --aud, or --iss"
        )
    token_format = go_trim(args.token_format).lower()
    if token_format not in (FORMAT_FST2, FORMAT_JWT):
        parser.usage_error(f"invalid --token-format: {args.token_format!r}")
    channel_id = go_trim(args.channel_id) or random_id()
    out = go_trim(args.out)

    def body() -> None:
        key = load_issuer_key(key_file)
        pair = mint_grant_pair(
            key,
            tunnel_url=tunnel_url,
            audience=audience,
            issuer=issuer,
            channel_id=channel_id,
            token_exp_seconds=args.token_exp_seconds,
            idle_timeout_seconds=_int32(args.idle_timeout_seconds),
            token_format=token_format,
        )
        result = {**_build_fields(), **pair.to_obj()}
        write_output(result, out=out, overwrite=args.overwrite, pretty=args.pretty)

    return _run(body)


def directinit_main(argv: Sequence[str] | None = None) -> int:
    """``flowersec-directinit``: connect info for a direct server."""
    parser = GoFlagParser("flowersec-directinit")
    parser.add_string(
        "ws-url",
        "",
        "direct server WebSocket URL (required)",
        env=("FSEC_DIRECT_WS_URL",),
    )
    parser.add_string(
        "channel-id",
        "",
        "channel id (default random)",
        env=("FSEC_DIRECT_CHANNEL_ID",),
    )
    parser.add_string(
        "psk-b64u",
        "",
        "base64url 32-byte PSK (default random)",
        env=("FSEC_DIRECT_PSK_B64U",),
    )
    parser.add_string(
        "suite", "x25519", "E2EE suite: x25519 or p256", env=("FSEC_DIRECT_SUITE",)
    )
    parser.add_int(
        "init-exp-seconds",
        60,
        "handshake init window in seconds",
        env=("FSEC_DIRECT_INIT_EXP_SECONDS",),
    )
    _add_output_flags(parser, "FSEC_DIRECT_OUT")
    args = parser.parse_args(argv)
    ws_url = go_trim(args.ws_url)
    if not ws_url:
        parser.usage_error("missing --ws-url")
    psk_text = go_trim(args.psk_b64u)
    if psk_text:
        try:
            psk = b64u_decode(psk_text)
        except DecodeError:
            parser.usage_error("invalid --psk-b64u: not base64url")
        if len(psk) != PSK_BYTES:
            parser.usage_error("invalid --psk-b64u: must decode to 32 bytes")
    else:
        psk = secrets.token_bytes(PSK_BYTES)
    suite = _SUITES.get(go_trim(args.suite).lower())
    if suite is None:
        parser.usage_error(f"invalid --suite: {args.suite!r}")
    if args.init_exp_seconds <= 0:
        parser.usage_error("--init-exp-seconds must be > 0")
    channel_id = go_trim(args.channel_id) or random_id()
    out = go_trim(args.out)

    def body() -> None:
        info = DirectConnectInfo(
            ws_url=ws_url,
            channel_id=channel_id,
            e2ee_psk_b64u=b64u_encode(psk),
            channel_init_expire_at_unix_s=math.floor(time.time())
            + args.init_exp_seconds,
            default_suite=suite,
        )
        result = {**_build_fields(), **info.to_obj()}
        write_output(result, out=out, overwrite=args.overwrite, pretty=args.pretty)

    return _run(body)
