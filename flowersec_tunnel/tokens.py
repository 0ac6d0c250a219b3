"""Attach tokens: FST2 (tunnel.md §1) and the equivalent EdDSA JWT.

The tunnel accepts two forms of the same claims against the same keyset:

* FST2 ``FST2.<payload_b64u>.<sig_b64u>``, verified with PyNaCl;
* a compact JWS whose header is ``{"alg":"EdDSA","typ":"JWT","kid":…}`` and
  whose claims are the FST2 payload members other than ``kid``, verified
  with PyJWT. A token is a JWT when its first part starts with ``eyJ`` (the
  encoding of ``{"``); anything else that is not FST2 fails as ``format``.

Both run the twelve checks of §1.4 in order with the same failure names.
For a JWT the header is decoded in step 2 and parsed in step 3 with the
payload; a header that is not an object or has a non-string ``kid`` is a
``json`` failure; an ``alg`` other than ``EdDSA``, or a ``typ`` that is
present and not ``JWT``, is a ``format`` failure reported at step 3. PyJWT
checks the signature only; the claim rules are ours so both forms behave
alike (a JWT ``aud`` must be a single string, as in FST2).
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from flowersec_endpoint.encoding import (
    INT8_MAX,
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    DecodeError,
    b64u_decode,
    b64u_encode,
    dumps_compact,
    loads_object,
    read_int,
    read_str,
)
from flowersec_tunnel.keys import IssuerKey

ROLE_CLIENT = 1
ROLE_SERVER = 2

FORMAT_FST2 = "fst2"
FORMAT_JWT = "jwt"

_PREFIX = "FST2"
_JWT_PREFIX = "eyJ"
_SIGNATURE_SIZE = 64
_KEY_SIZE = 32


@dataclass(frozen=True, slots=True)
class TokenPayload:
    """The signed claims of an attach token (tunnel.md §1.2 order)."""

    kid: str
    aud: str
    iss: str
    channel_id: str
    role: int
    token_id: str
    init_exp: int
    idle_timeout_seconds: int
    iat: int
    exp: int


class TokenError(ValueError):
    """A token that fails verification; ``reason`` names the failed step.

    Reasons (tunnel.md §1.4): ``format``, ``base64``, ``json``,
    ``idle_timeout``, ``unknown_kid``, ``signature``, ``audience``,
    ``issuer``, ``iat_in_future``, ``expired``, ``init_expired``,
    ``exp_after_init``. All map to close 1008 ``invalid_token``; the message
    never contains the token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token: {reason}")
        self.reason = reason


def round_skew(seconds: float) -> int:
    """Normalise a skew duration to whole seconds: round up, never negative."""
    if seconds <= 0:
        return 0
    return math.ceil(seconds)


def _claims(payload: TokenPayload) -> dict[str, Any]:
    claims: dict[str, Any] = {"aud": payload.aud}
    if payload.iss:
        claims["iss"] = payload.iss
    claims.update(
        channel_id=payload.channel_id,
        role=payload.role,
        token_id=payload.token_id,
        init_exp=payload.init_exp,
        idle_timeout_seconds=payload.idle_timeout_seconds,
        iat=payload.iat,
        exp=payload.exp,
    )
    return claims


def _check_signable(payload: TokenPayload) -> None:
    if not payload.kid.strip() or not payload.aud.strip():
        raise ValueError("token kid and aud must not be blank")
    if not 0 < payload.idle_timeout_seconds <= INT32_MAX:
        raise ValueError("token idle_timeout_seconds must be a positive int32")
    if not 0 <= payload.role <= INT8_MAX:
        raise ValueError("token role must fit in 8 bits")
    for value in (payload.init_exp, payload.iat, payload.exp):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("token timestamps must fit in int64")


def sign_token(
    payload: TokenPayload, key: IssuerKey, *, token_format: str = FORMAT_FST2
) -> str:
    """Sign ``payload`` (its ``kid`` replaced by ``key.kid``) as FST2 or JWT.

    Raises ``ValueError`` for a blank kid/aud, a non-positive idle timeout,
    out-of-range members or an unknown format (tunnel.md §1.3 step 1).
    """
    kid = key.kid
    _check_signable(replace(payload, kid=kid))
    if token_format == FORMAT_FST2:
        body = dumps_compact({"kid": kid, **_claims(payload)})
        signed = f"{_PREFIX}.{b64u_encode(body)}"
        signature = key.sign(signed.encode("ascii"))
        return f"{signed}.{b64u_encode(signature)}"
    if token_format == FORMAT_JWT:
        private = Ed25519PrivateKey.from_private_bytes(key.seed)
        return jwt.encode(
            _claims(payload),
            private,
            algorithm="EdDSA",
            headers={"kid": kid, "typ": "JWT"},
        )
    raise ValueError(f"unknown token format {token_format!r}")


def _decode_part(text: str) -> bytes:
    try:
        return b64u_decode(text)
    except DecodeError:
        raise TokenError("base64") from None


def _parse_object(data: bytes) -> dict[str, Any]:
    try:
        return loads_object(data)
    except DecodeError:
        raise TokenError("json") from None


def _read_payload(obj: dict[str, Any], kid: str | None) -> TokenPayload:
    try:
        return TokenPayload(
            kid=read_str(obj, "kid") if kid is None else kid,
            aud=read_str(obj, "aud"),
            iss=read_str(obj, "iss"),
            channel_id=read_str(obj, "channel_id"),
            role=read_int(obj, "role", 0, INT8_MAX),
            token_id=read_str(obj, "token_id"),
            init_exp=read_int(obj, "init_exp", INT64_MIN, INT64_MAX),
            idle_timeout_seconds=read_int(
                obj, "idle_timeout_seconds", INT32_MIN, INT32_MAX
            ),
            iat=read_int(obj, "iat", INT64_MIN, INT64_MAX),
            exp=read_int(obj, "exp", INT64_MIN, INT64_MAX),
        )
    except DecodeError:
        raise TokenError("json") from None


@lru_cache(maxsize=1024)
def _jwt_key(public_key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key)


_JWS = jwt.PyJWS(algorithms=["EdDSA"])


def _same(value: str, expected: str) -> bool:
    return hmac.compare_digest(
        value.encode("utf-8", "surrogatepass"), expected.encode("utf-8")
    )


def verify_token(
    token: str,
    keys: Mapping[str, bytes],
    *,
    audience: str,
    issuer: str,
    skew_seconds: int,
    now: float,
) -> TokenPayload:
    """Verify an attach token in the order of tunnel.md §1.4.

    ``keys`` maps kid to a 32-byte Ed25519 public key; an empty
    ``audience`` or ``issuer`` skips that check; ``skew_seconds`` is already
    rounded (:func:`round_skew`); ``now`` is the wall clock with its
    fraction. Raises :class:`TokenError` at the first failed step.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("format")
    head, body, sig = parts
    if head == _PREFIX:
        payload_bytes = _decode_part(body)
        signature = _decode_part(sig)
        payload = _read_payload(_parse_object(payload_bytes), None)
        public_key = _lookup(payload, keys)
        signed = f"{head}.{body}".encode("ascii")
        if len(signature) != _SIGNATURE_SIZE or len(public_key) != _KEY_SIZE:
            raise TokenError("signature")
        try:
            crypto_sign_open(signature + signed, public_key)
        except BadSignatureError:
            raise TokenError("signature") from None
    elif head.startswith(_JWT_PREFIX):
        header_bytes = _decode_part(head)
        payload_bytes = _decode_part(body)
        _decode_part(sig)
        header = _parse_object(header_bytes)
        claims = _parse_object(payload_bytes)
        try:
            kid = read_str(header, "kid")
            alg = read_str(header, "alg")
        except DecodeError:
            raise TokenError("json") from None
        if alg != "EdDSA" or header.get("typ") not in (None, "JWT"):
            raise TokenError("format")
        payload = _read_payload(claims, kid)
        public_key = _lookup(payload, keys)
        if len(public_key) != _KEY_SIZE:
            raise TokenError("signature")
        try:
            _JWS.decode(token, _jwt_key(bytes(public_key)), algorithms=["EdDSA"])
        except jwt.PyJWTError:
            raise TokenError("signature") from None
    else:
        raise TokenError("format")
    _check_claims(payload, audience, issuer, skew_seconds, now)
    return payload


def _lookup(payload: TokenPayload, keys: Mapping[str, bytes]) -> bytes:
    if payload.idle_timeout_seconds <= 0:
        raise TokenError("idle_timeout")
    public_key = keys.get(payload.kid)
    if public_key is None:
        raise TokenError("unknown_kid")
    return public_key


def _check_claims(
    payload: TokenPayload, audience: str, issuer: str, skew: int, now: float
) -> None:
    if audience and not _same(payload.aud, audience):
        raise TokenError("audience")
    if issuer and not _same(payload.iss, issuer):
        raise TokenError("issuer")
    if payload.iat > now + skew:
        raise TokenError("iat_in_future")
    if payload.exp < now - skew:
        raise TokenError("expired")
    if payload.init_exp < now - skew:
        raise TokenError("init_expired")
    if payload.exp > payload.init_exp:
        raise TokenError("exp_after_init")
