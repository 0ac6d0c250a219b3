"""FST2 and JWT attach tokens: vectors, every failed step, skew, fuzzing."""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Callable
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.encoding import b64u_decode, b64u_encode
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.tokens import (
    TokenError,
    TokenPayload,
    round_skew,
    sign_token,
    verify_token,
)

AUD = "flowersec-tunnel:dev"
ISS = "issuer-dev"
IAT = 1699999900
EXP = 1699999960
INIT_EXP = 1700000000


def check(
    token: str,
    keys: dict[str, bytes],
    *,
    now: float = IAT,
    skew: int = 0,
    audience: str = AUD,
    issuer: str = ISS,
) -> TokenPayload:
    return verify_token(
        token, keys, audience=audience, issuer=issuer, skew_seconds=skew, now=now
    )


def reason_of(call: Callable[[], object]) -> str:
    with pytest.raises(TokenError) as info:
        call()
    return info.value.reason


def test_vectors_reproduce_and_verify(token_vectors: list[dict[str, object]]) -> None:
    for case in token_vectors:
        inputs = case["inputs"]
        assert isinstance(inputs, dict)
        payload = TokenPayload(**inputs["payload"])
        key = IssuerKey.from_seed(
            payload.kid, bytes.fromhex(inputs["ed25519_seed_hex"])
        )
        token = sign_token(payload, key)
        expected = case["expected"]
        assert isinstance(expected, dict)
        assert token == expected["token"], case["case_id"]
        verified = verify_token(
            token,
            {payload.kid: key.public_key},
            audience=payload.aud,
            issuer="",
            skew_seconds=0,
            now=payload.iat,
        )
        assert verified == payload


def test_spec_key_values(key: IssuerKey) -> None:
    assert b64u_encode(key.public_key) == "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
    assert b64u_encode(key.private_key) == (
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe_884Qvh1w3RjnS8CZZ-TWMJul"
        "DV8d3IZkElUxuA"
    )
    assert "seed" not in repr(key)
    assert key.seed.hex() not in repr(key)


def test_sign_overwrites_kid_and_omits_empty_iss(
    key: IssuerKey, payload: TokenPayload
) -> None:
    token = sign_token(replace(payload, kid="other", iss=""), key)
    body = json.loads(b64u_decode(token.split(".")[1]))
    assert body["kid"] == "k1"
    assert "iss" not in body
    assert list(body) == [
        "kid",
        "aud",
        "channel_id",
        "role",
        "token_id",
        "init_exp",
        "idle_timeout_seconds",
        "iat",
        "exp",
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": " "},
        {"idle_timeout_seconds": 0},
        {"idle_timeout_seconds": -1},
        {"role": 256},
        {"exp": 2**63},
    ],
)
def test_sign_rejects(
    key: IssuerKey, payload: TokenPayload, changes: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        sign_token(replace(payload, **changes), key)  # type: ignore[arg-type]


def test_sign_rejects_blank_kid_and_unknown_format(payload: TokenPayload) -> None:
    with pytest.raises(ValueError):
        sign_token(payload, IssuerKey.from_seed(" ", bytes(32)))
    with pytest.raises(ValueError):
        sign_token(payload, IssuerKey.from_seed("k1", bytes(32)), token_format="paseto")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(1.5, 2), (30, 30), (30.0, 30), (0.001, 1), (0, 0), (-5, 0), (-0.5, 0)],
)
def test_round_skew(seconds: float, expected: int) -> None:
    assert round_skew(seconds) == expected


@pytest.mark.parametrize("fmt", ["fst2", "jwt"])
def test_skew_boundaries(
    fmt: str, key: IssuerKey, keyset: dict[str, bytes], payload: TokenPayload
) -> None:
    token = sign_token(payload, key, token_format=fmt)
    # Spec example: S = 30, accepted at exp + 30, rejected at exp + 30.5.
    assert check(token, keyset, now=EXP + 30, skew=30).exp == EXP
    assert reason_of(lambda: check(token, keyset, now=EXP + 30.5, skew=30)) == "expired"
    assert reason_of(lambda: check(token, keyset, now=EXP + 31, skew=30)) == "expired"
    assert reason_of(lambda: check(token, keyset, now=EXP + 0.5)) == "expired"
    assert check(token, keyset, now=IAT - 30, skew=30).iat == IAT
    assert reason_of(lambda: check(token, keyset, now=IAT - 30.5, skew=30)) == (
        "iat_in_future"
    )
    assert reason_of(lambda: check(token, keyset, now=IAT - 0.001)) == "iat_in_future"


@pytest.mark.parametrize("fmt", ["fst2", "jwt"])
def test_ok_without_aud_and_iss_checks(
    fmt: str, key: IssuerKey, keyset: dict[str, bytes], payload: TokenPayload
) -> None:
    token = sign_token(replace(payload, aud="x", iss=""), key, token_format=fmt)
    assert check(token, keyset, audience="", issuer="").aud == "x"


# Every step of tunnel.md §1.4, FST2 form.


@pytest.mark.parametrize(
    "token",
    [
        "",
        "FST2",
        "FST2.a",
        "FST2.a.b.c",
        "fst2.e30.AA",
        "FST3.e30.AA",
        "x.y.z",
        "....",
    ],
)
def test_fst2_format(token: str, keyset: dict[str, bytes]) -> None:
    assert reason_of(lambda: check(token, keyset)) == "format"


@pytest.mark.parametrize(
    "token",
    [
        "FST2.e30=.AA",
        "FST2.e+0.AA",
        "FST2.A.AA",
        "FST2.e30.A/A",
        "FST2.e30.A",
        "FST2.e 0.AA",
    ],
)
def test_fst2_base64(token: str, keyset: dict[str, bytes]) -> None:
    assert reason_of(lambda: check(token, keyset)) == "base64"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"null",
        b"{",
        b'{"role":1.0}',
        b'{"role":256}',
        b'{"role":-1}',
        b'{"role":true}',
        b'{"iat":"1"}',
        b'{"exp":1e3}',
        b'{"idle_timeout_seconds":2147483648}',
        b'{"init_exp":9223372036854775808}',
        b'{"aud":1}',
        b'{"kid":["k1"]}',
        b'{"x":NaN}',
        b"{} x",
        b'{"aud":"\xff"}',
        b'{"iat":' + b"9" * 5000 + b"}",
    ],
)
def test_fst2_json(
    body: bytes, craft_fst2: Callable[[bytes], str], keyset: dict[str, bytes]
) -> None:
    assert reason_of(lambda: check(craft_fst2(body), keyset)) == "json"


def test_fst2_steps_in_order(
    craft_fst2: Callable[[bytes], str],
    claims_json: Callable[..., bytes],
    keyset: dict[str, bytes],
    key: IssuerKey,
) -> None:
    def reason(body: bytes, **kwargs: object) -> str:
        token = craft_fst2(body)
        return reason_of(lambda: check(token, keyset, **kwargs))  # type: ignore[arg-type]

    # Step 4 comes before the key lookup and the signature.
    assert reason(claims_json(idle_timeout_seconds=0, kid="nope")) == "idle_timeout"
    assert reason(claims_json(idle_timeout_seconds=-5)) == "idle_timeout"
    assert reason(b"{}") == "idle_timeout"
    assert reason(claims_json(kid="K1")) == "unknown_kid"
    assert reason(claims_json(kid="")) == "unknown_kid"
    # Step 6: tampered signature, short signature, foreign key.
    good = craft_fst2(claims_json())
    head, body, sig = good.split(".")
    raw = bytearray(b64u_decode(sig))
    raw[0] ^= 1
    assert reason_of(
        lambda: check(f"{head}.{body}.{b64u_encode(bytes(raw))}", keyset)
    ) == ("signature")
    assert reason_of(
        lambda: check(f"{head}.{body}.{b64u_encode(bytes(raw[:63]))}", keyset)
    ) == ("signature")
    other = IssuerKey.from_seed("k1", bytes(32))
    assert reason_of(lambda: check(good, {"k1": other.public_key})) == "signature"
    assert reason_of(lambda: check(good, {"k1": b"short"})) == "signature"
    # Signature over the encoded text: a re-encoded equal payload fails.
    padded = b64u_encode(b" " + claims_json())
    assert reason_of(lambda: check(f"{head}.{padded}.{sig}", keyset)) == "signature"
    # Steps 7-12, each with everything before it passing.
    assert reason(claims_json(aud="flowersec-tunnel:prod")) == "audience"
    assert reason(claims_json(aud="")) == "audience"
    assert reason(claims_json(iss="other")) == "issuer"
    assert reason(claims_json(iss=None)) == "issuer"
    assert reason(claims_json(iat=IAT + 1)) == "iat_in_future"
    assert reason(claims_json(exp=IAT - 1)) == "expired"
    assert reason(claims_json(init_exp=IAT - 1, exp=IAT)) == "init_expired"
    assert reason(claims_json(exp=INIT_EXP + 1)) == "exp_after_init"
    # Audience before issuer, iat before exp, exp before init_exp.
    assert reason(claims_json(aud="x", iss="y")) == "audience"
    assert reason(claims_json(iat=IAT + 1, exp=0)) == "iat_in_future"
    assert reason(claims_json(exp=0, init_exp=0)) == "expired"
    # Not checked by the reference: iat > exp, role range, empty token_id.
    assert check(craft_fst2(claims_json(role=7, token_id="")), keyset).role == 7
    assert check(craft_fst2(claims_json(iat=IAT, exp=IAT)), keyset).exp == IAT


def test_fst2_tolerates_crlf_and_nulls(
    craft_fst2: Callable[[bytes], str],
    claims_json: Callable[..., bytes],
    keyset: dict[str, bytes],
) -> None:
    token = craft_fst2(claims_json(channel_id=None, extra={"a": [1, 2]}))
    assert check(token, keyset).channel_id == ""
    head, body, sig = token.split(".")
    assert check(f"{head}.{body}.{sig[:40]}\r\n{sig[40:]}", keyset).kid == "k1"


def test_duplicate_members_last_wins(
    craft_fst2: Callable[[bytes], str],
    claims_json: Callable[..., bytes],
    keyset: dict[str, bytes],
) -> None:
    body = claims_json()[:-1] + b',"role":2}'
    assert check(craft_fst2(body), keyset).role == 2


# JWT form: same rules, same reasons.


def jwt_token(
    header: dict[str, object], claims: dict[str, object], seed: bytes = bytes(range(32))
) -> str:
    """Compact JWS signed by hand, so headers PyJWT refuses can be built."""
    head = b64u_encode(json.dumps({"alg": "EdDSA", **header}).encode())
    signed = head + "." + b64u_encode(json.dumps(claims).encode())
    signature = IssuerKey.from_seed("any", seed).sign(signed.encode())
    return signed + "." + b64u_encode(signature)


def base_claims(**changes: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "aud": AUD,
        "iss": ISS,
        "channel_id": "chan_test_123",
        "role": 1,
        "token_id": "tok_test_1",
        "init_exp": INIT_EXP,
        "idle_timeout_seconds": 60,
        "iat": IAT,
        "exp": EXP,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_jwt_accepted_and_matches_fst2(
    key: IssuerKey, keyset: dict[str, bytes], payload: TokenPayload
) -> None:
    token = sign_token(payload, key, token_format="jwt")
    assert token.startswith("eyJ")
    assert jwt.get_unverified_header(token) == {
        "alg": "EdDSA",
        "kid": "k1",
        "typ": "JWT",
    }
    assert check(token, keyset) == check(sign_token(payload, key), keyset) == payload
    # A JWT made by PyJWT directly (no typ) is accepted too.
    assert check(jwt_token({"kid": "k1"}, base_claims()), keyset) == payload


def test_jwt_steps(keyset: dict[str, bytes]) -> None:
    def reason(header: dict[str, object], **changes: object) -> str:
        token = jwt_token({"kid": "k1", **header}, base_claims(**changes))
        return reason_of(lambda: check(token, keyset))

    assert reason({"typ": "JOSE"}) == "format"
    assert reason({"kid": 5}) == "json"
    assert reason({}, role=1.5) == "json"
    assert reason({}, aud=["flowersec-tunnel:dev"]) == "json"
    assert reason({}, idle_timeout_seconds=0) == "idle_timeout"
    assert reason({"kid": "k2"}) == "unknown_kid"
    assert reason({}, aud="x") == "audience"
    assert reason({}, iss=None) == "issuer"
    assert reason({}, iat=IAT + 1) == "iat_in_future"
    assert reason({}, exp=IAT - 1) == "expired"
    assert reason({}, init_exp=IAT - 1, exp=IAT) == "init_expired"
    assert reason({}, exp=INIT_EXP + 1) == "exp_after_init"
    # Signed by another key under the same kid.
    foreign = jwt_token({"kid": "k1"}, base_claims(), seed=bytes(32))
    assert reason_of(lambda: check(foreign, keyset)) == "signature"


def test_jwt_wrong_alg_and_form(keyset: dict[str, bytes]) -> None:
    hs = jwt.encode(
        base_claims(),
        "secret-secret-secret-secret-32by",
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    assert reason_of(lambda: check(hs, keyset)) == "format"
    none_header = b64u_encode(b'{"alg":"none","kid":"k1"}')
    body = b64u_encode(json.dumps(base_claims()).encode())
    assert reason_of(lambda: check(f"{none_header}.{body}.", keyset)) == "format"
    # EdDSA header but the signature part is missing.
    header = b64u_encode(b'{"alg":"EdDSA","kid":"k1"}')
    assert reason_of(lambda: check(f"{header}.{body}.", keyset)) == "signature"
    assert reason_of(lambda: check(f"{header}.{body}.A", keyset)) == "base64"
    assert reason_of(lambda: check(f"{header}.{body}", keyset)) == "format"
    bad_header = b64u_encode(b"[1]")
    assert not bad_header.startswith("eyJ")
    assert reason_of(lambda: check(f"{bad_header}.{body}.AA", keyset)) == "format"
    assert reason_of(lambda: check(f"eyJ.{body}.AA", keyset)) == "json"
    no_alg = b64u_encode(b'{"kid":"k1"}')
    assert reason_of(lambda: check(f"{no_alg}.{body}.AA", keyset)) == "format"
    # PyJWT's own encoder is accepted when it carries our header.
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    token = jwt.encode(base_claims(), private, algorithm="EdDSA", headers={"kid": "k1"})
    assert check(token, keyset).kid == "k1"


def test_jwt_tampered_payload(
    key: IssuerKey, keyset: dict[str, bytes], payload: TokenPayload
) -> None:
    token = sign_token(payload, key, token_format="jwt")
    head, _, sig = token.split(".")
    forged = b64u_encode(json.dumps(base_claims(role=2)).encode())
    assert reason_of(lambda: check(f"{head}.{forged}.{sig}", keyset)) == "signature"


# Only TokenError ever comes out of the verifier.

_parts = st.text(
    alphabet=string.ascii_letters + string.digits + "-_=+/.\r\n ",
    max_size=60,
)


@given(st.text(max_size=200))
def test_fuzz_any_text(token: str) -> None:
    keys = {"k1": IssuerKey.from_seed("k1", bytes(range(32))).public_key}
    with contextlib.suppress(TokenError):
        verify_token(token, keys, audience=AUD, issuer=ISS, skew_seconds=30, now=IAT)


@given(st.sampled_from(["FST2", "eyJhbGciOiJFZERTQSJ9", "eyJ"]), _parts, _parts)
def test_fuzz_structured(head: str, body: str, sig: str) -> None:
    keys = {"k1": IssuerKey.from_seed("k1", bytes(range(32))).public_key}
    with contextlib.suppress(TokenError):
        verify_token(
            f"{head}.{body}.{sig}",
            keys,
            audience=AUD,
            issuer=ISS,
            skew_seconds=0,
            now=IAT,
        )


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_claim_names = st.sampled_from(
    [
        "kid",
        "aud",
        "iss",
        "channel_id",
        "role",
        "token_id",
        "init_exp",
        "idle_timeout_seconds",
        "iat",
        "exp",
    ]
)


@given(st.dictionaries(_claim_names, _json_values, max_size=10))
def test_fuzz_signed_payloads(claims: dict[str, object]) -> None:
    key = IssuerKey.from_seed("k1", bytes(range(32)))
    signed = "FST2." + b64u_encode(json.dumps(claims).encode())
    token = signed + "." + b64u_encode(key.sign(signed.encode()))
    try:
        result = verify_token(
            token,
            {"k1": key.public_key},
            audience="",
            issuer="",
            skew_seconds=0,
            now=IAT,
        )
    except TokenError:
        return
    assert isinstance(result, TokenPayload)
    assert result.idle_timeout_seconds > 0
    assert result.exp <= result.init_exp
