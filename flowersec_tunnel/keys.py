"""Issuer private key file and tunnel keyset file (tunnel.md §2.1, §2.2).

Both formats are shared with the reference tools, so loading is as strict
as theirs and writing reproduces their bytes and file modes. Errors carry
the path and what is wrong, never key material.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nacl.bindings import crypto_sign_seed_keypair
from nacl.signing import SigningKey

from flowersec_endpoint.encoding import (
    DecodeError,
    b64u_decode,
    b64u_encode,
    loads_object,
    read_str,
)
from flowersec_tunnel.jsonfile import dumps_json, write_file

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
PRIVATE_KEY_SIZE = SEED_SIZE + PUBLIC_KEY_SIZE


class KeyFileError(ValueError):
    """A key file that cannot be used; the message is safe to log."""


@dataclass(frozen=True)
class IssuerKey:
    """An Ed25519 issuer key pair with its key ID; ``repr`` hides the seed."""

    kid: str
    seed: bytes = field(repr=False)
    public_key: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_SIZE or len(self.public_key) != PUBLIC_KEY_SIZE:
            raise ValueError("issuer key needs a 32-byte seed and public key")

    @classmethod
    def generate(cls, kid: str) -> IssuerKey:
        """Create a fresh key pair from the OS CSPRNG."""
        return cls.from_seed(kid, bytes(SigningKey.generate()))

    @classmethod
    def from_seed(cls, kid: str, seed: bytes) -> IssuerKey:
        """Derive the key pair from a 32-byte seed."""
        if len(seed) != SEED_SIZE:
            raise ValueError("seed must be 32 bytes")
        public_key, _ = crypto_sign_seed_keypair(seed)
        return cls(kid=kid, seed=bytes(seed), public_key=public_key)

    @property
    def private_key(self) -> bytes:
        """The 64-byte Go layout: seed followed by the public key."""
        return self.seed + self.public_key

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        signature: bytes = SigningKey(self.seed).sign(message).signature
        return signature


def _read_json(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise KeyFileError(f"read {what} {name}: {exc.strerror}") from None
    try:
        return loads_object(data)
    except DecodeError as exc:
        raise KeyFileError(f"parse {what} {name}: {exc}") from None


def load_issuer_key(path: str | os.PathLike[str]) -> IssuerKey:
    """Load an issuer private key file and check that its halves match.

    Beyond the reference's checks, a file whose stored public half is not
    the one derived from its seed is rejected (tunnel.md §2.1 [weak]):
    signing with it would produce tokens no keyset verifies.
    """
    name = os.fspath(path)
    obj = _read_json(path, "issuer private key file")
    try:
        kid = read_str(obj, "kid")
        encoded = read_str(obj, "privkey_b64u")
    except DecodeError as exc:
        raise KeyFileError(f"parse issuer private key file {name}: {exc}") from None
    if not kid or not encoded:
        raise KeyFileError(f"issuer private key file {name}: missing kid or privkey")
    try:
        private = b64u_decode(encoded)
    except DecodeError:
        raise KeyFileError(
            f"issuer private key file {name}: privkey_b64u is not base64url"
        ) from None
    if len(private) != PRIVATE_KEY_SIZE:
        raise KeyFileError(
            f"issuer private key file {name}: private key must be 64 bytes"
        )
    key = IssuerKey.from_seed(kid, private[:SEED_SIZE])
    if key.public_key != private[SEED_SIZE:]:
        raise KeyFileError(
            f"issuer private key file {name}: public half does not match the seed"
        )
    return key


def write_issuer_key(
    path: str | os.PathLike[str], key: IssuerKey, *, overwrite: bool = False
) -> None:
    """Write the private key file: 2-space JSON, no newline, mode 0600.

    Raises :class:`~flowersec_tunnel.jsonfile.RefuseOverwriteError` if the
    file exists and ``overwrite`` is false; other ``OSError`` as raised.
    """
    obj = {"kid": key.kid, "privkey_b64u": b64u_encode(key.private_key)}
    write_file(path, dumps_json(obj, pretty=True), mode=0o600, overwrite=overwrite)


def load_keyset(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """Load a tunnel keyset file into ``kid -> 32-byte public key``.

    Any bad entry rejects the whole file; a repeated kid keeps the last one.
    """
    name = os.fspath(path)
    obj = _read_json(path, "issuer keys file")
    entries = obj.get("keys")
    if entries is not None and not isinstance(entries, list):
        raise KeyFileError(f"parse issuer keys file {name}: keys: expected an array")
    if not entries:
        raise KeyFileError(f"issuer keys file {name}: no keys")
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(entries):
        where = f"issuer keys file {name}: keys[{position}]"
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise KeyFileError(f"parse {where}: expected an object")
        try:
            kid = read_str(entry, "kid")
            encoded = read_str(entry, "pubkey_b64u")
        except DecodeError as exc:
            raise KeyFileError(f"parse {where}: {exc}") from None
        if not kid or not encoded:
            raise KeyFileError(f"{where}: missing kid or pubkey_b64u")
        try:
            public_key = b64u_decode(encoded)
        except DecodeError:
            raise KeyFileError(f"{where}: pubkey_b64u is not base64url") from None
        if len(public_key) != PUBLIC_KEY_SIZE:
            raise KeyFileError(f"{where}: public key must be 32 bytes")
        keys[kid] = public_key
    return keys


def write_keyset(
    path: str | os.PathLike[str],
    keys: Mapping[str, bytes],
    *,
    overwrite: bool = False,
) -> None:
    """Write a keyset file: 2-space JSON, no newline, mode 0644.

    Raises :class:`~flowersec_tunnel.jsonfile.RefuseOverwriteError` if the
    file exists and ``overwrite`` is false; ``ValueError`` for a bad key.
    """
    if not keys:
        raise ValueError("a keyset needs at least one key")
    entries = []
    for kid, public_key in keys.items():
        if not kid or len(public_key) != PUBLIC_KEY_SIZE:
            raise ValueError("keyset entries need a kid and a 32-byte key")
        entries.append({"kid": kid, "pubkey_b64u": b64u_encode(public_key)})
    data = dumps_json({"keys": entries}, pretty=True)
    write_file(path, data, mode=0o644, overwrite=overwrite)
