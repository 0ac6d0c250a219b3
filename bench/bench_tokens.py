"""Attach-token figures: verifications and signatures per second, per form.

Run: ``.venv/bin/python bench/bench_tokens.py [--seconds 1.0]``. Each
verification is the whole tunnel-side check of tunnel.md §1.4 on one core
(parse, key lookup, Ed25519, claims) against a keyset of ``--keys`` kids.
The reference's Go figure for the same work is in tunnel.md §10.2.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.tokens import TokenPayload, sign_token, verify_token

NOW = 1_700_000_000


def _rate(fn: Callable[[], object], seconds: float) -> tuple[int, float]:
    fn()
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            fn()
        count += 100
    elapsed = time.perf_counter() - start
    return count, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--keys", type=int, default=4)
    args = parser.parse_args()
    key = IssuerKey.from_seed("k1", bytes(range(32)))
    keyset = {f"old{i}": IssuerKey.generate("x").public_key for i in range(args.keys)}
    keyset[key.kid] = key.public_key
    payload = TokenPayload(
        kid="k1",
        aud="flowersec-tunnel:dev",
        iss="issuer-dev",
        channel_id="chan_bench",
        role=1,
        token_id="tok_bench",
        init_exp=NOW + 120,
        idle_timeout_seconds=60,
        iat=NOW,
        exp=NOW + 60,
    )
    for form in ("fst2", "jwt"):
        token = sign_token(payload, key, token_format=form)

        def verify(token: str = token) -> object:
            return verify_token(
                token,
                keyset,
                audience=payload.aud,
                issuer=payload.iss,
                skew_seconds=30,
                now=NOW + 0.5,
            )

        def sign(form: str = form) -> object:
            return sign_token(payload, key, token_format=form)

        for name, fn in (("verify", verify), ("sign", sign)):
            count, elapsed = _rate(fn, args.seconds)
            print(
                f"{form:4} {name:6} {count / elapsed:10.0f} /s "
                f"{elapsed / count * 1e6:8.1f} us each ({len(token)} char token)"
            )


if __name__ == "__main__":
    main()
