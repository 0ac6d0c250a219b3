"""Key agreement, transcript hash and key schedule (e2ee.md §6, §7, §10.1).

Every primitive comes from ``cryptography``; this module only fixes the
inputs, labels and lengths the specification prescribes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from flowersec_endpoint.e2ee.constants import (
    KEY_LEN,
    LABEL_C2S_KEY,
    LABEL_C2S_NONCE_PREFIX,
    LABEL_REKEY_BASE,
    LABEL_REKEY_IKM,
    LABEL_REKEY_KEY,
    LABEL_S2C_KEY,
    LABEL_S2C_NONCE_PREFIX,
    NONCE_LEN,
    NONCE_PREFIX_LEN,
    TRANSCRIPT_PREFIX,
    Direction,
    Suite,
)
from flowersec_endpoint.e2ee.errors import handshake_failed

Random = Callable[[int], bytes]
"""Randomness source returning n bytes; tests inject fixed ones. Without
one, keys come from OpenSSL and nonces from ``os.urandom``."""

_P256_ORDER = int(
    "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16
)
_P256 = ec.SECP256R1()
_ECDH = ec.ECDH()
_P256_POINT_LEN = 65
_X25519_KEY_LEN = 32
_U16_MAX = 0xFFFF
_SHA256 = hashes.SHA256()
_TH_FIXED = struct.Struct(">BHBII")


class EphemeralKey:
    """One side's ephemeral key pair for a suite, with ECDH against a peer."""

    __slots__ = ("_p256", "_x25519", "public", "suite")

    def __init__(
        self,
        suite: Suite,
        private: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey,
    ) -> None:
        self.suite = suite
        # Exactly one is set; two plain attributes spare the ABC isinstance
        # checks on the handshake's hot path.
        self._x25519: x25519.X25519PrivateKey | None = None
        self._p256: ec.EllipticCurvePrivateKey | None = None
        if isinstance(private, x25519.X25519PrivateKey):
            self._x25519 = private
            self.public = private.public_key().public_bytes_raw()
        else:
            self._p256 = private
            self.public = private.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )

    @classmethod
    def generate(cls, suite: Suite, rng: Random | None = None) -> EphemeralKey:
        """A fresh key pair: from ``rng`` (32 bytes per attempt) if given,
        else from OpenSSL's generator, which is faster for P-256."""
        if suite is Suite.X25519_HKDF_SHA256_AES_256_GCM:
            if rng is None:
                return cls(suite, x25519.X25519PrivateKey.generate())
            return cls.from_private_bytes(suite, rng(_X25519_KEY_LEN))
        if rng is None:
            return cls(suite, ec.generate_private_key(_P256))
        while True:
            scalar = int.from_bytes(rng(32), "big")
            if 0 < scalar < _P256_ORDER:
                return cls(suite, ec.derive_private_key(scalar, _P256))

    @classmethod
    def from_private_bytes(cls, suite: Suite, raw: bytes) -> EphemeralKey:
        """Load a raw X25519 key or a big-endian P-256 scalar (for vectors)."""
        if suite is Suite.X25519_HKDF_SHA256_AES_256_GCM:
            return cls(suite, x25519.X25519PrivateKey.from_private_bytes(raw))
        return cls(suite, ec.derive_private_key(int.from_bytes(raw, "big"), _P256))

    def exchange(self, peer_public: bytes) -> bytes:
        """ECDH with the peer's wire-encoded key; raises :class:`E2EEError`."""
        try:
            if self._x25519 is not None:
                peer_x = x25519.X25519PublicKey.from_public_bytes(peer_public)
                return self._x25519.exchange(peer_x)
            assert self._p256 is not None
            return self._p256.exchange(_ECDH, load_p256_public(peer_public))
        except ValueError as exc:
            raise handshake_failed(f"key agreement failed: {exc}") from exc


def load_p256_public(raw: bytes) -> ec.EllipticCurvePublicKey:
    """Parse an uncompressed SEC1 point; the only form the peers accept."""
    if len(raw) != _P256_POINT_LEN or raw[0] != 0x04:
        raise ValueError("P-256 public key must be 65 bytes, uncompressed")
    return ec.EllipticCurvePublicKey.from_encoded_point(_P256, raw)


def public_key_length(suite: Suite) -> int:
    """Wire length of a public key of ``suite``."""
    if suite is Suite.X25519_HKDF_SHA256_AES_256_GCM:
        return _X25519_KEY_LEN
    return _P256_POINT_LEN


def transcript_hash(
    *,
    version: int,
    suite: int,
    role: int,
    client_features: int,
    server_features: int,
    channel_id: str,
    nonce_c: bytes,
    nonce_s: bytes,
    client_pub: bytes,
    server_pub: bytes,
) -> bytes:
    """SHA-256 of the transcript T of §6, with both references' input checks."""
    channel = channel_id.encode("utf-8")
    for name, value in (
        ("channel_id", channel),
        ("client_pub", client_pub),
        ("server_pub", server_pub),
    ):
        if not 0 < len(value) <= _U16_MAX:
            raise handshake_failed(f"transcript: bad {name} length")
    if len(nonce_c) != NONCE_LEN or len(nonce_s) != NONCE_LEN:
        raise handshake_failed("transcript: nonces must be 32 bytes")
    digest = hashes.Hash(_SHA256)
    digest.update(
        b"".join(
            (
                TRANSCRIPT_PREFIX,
                _TH_FIXED.pack(version, suite, role, client_features, server_features),
                len(channel).to_bytes(2, "big"),
                channel,
                nonce_c,
                nonce_s,
                len(client_pub).to_bytes(2, "big"),
                client_pub,
                len(server_pub).to_bytes(2, "big"),
                server_pub,
            )
        )
    )
    return digest.finalize()


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """Everything the record layer needs from a finished handshake."""

    transcript_hash: bytes
    c2s_key: bytes
    s2c_key: bytes
    rekey_base: bytes
    c2s_nonce_prefix: bytes
    s2c_nonce_prefix: bytes


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(_SHA256, length, info).derive(prk)


def derive_session_keys(psk: bytes, shared_secret: bytes, th: bytes) -> SessionKeys:
    """HKDF with salt = PSK over ``shared ‖ th``, five labelled outputs (§7.2)."""
    prk = HKDF.extract(_SHA256, psk, shared_secret + th)
    return SessionKeys(
        transcript_hash=th,
        c2s_key=_expand(prk, LABEL_C2S_KEY, KEY_LEN),
        s2c_key=_expand(prk, LABEL_S2C_KEY, KEY_LEN),
        rekey_base=_expand(prk, LABEL_REKEY_BASE, KEY_LEN),
        c2s_nonce_prefix=_expand(prk, LABEL_C2S_NONCE_PREFIX, NONCE_PREFIX_LEN),
        s2c_nonce_prefix=_expand(prk, LABEL_S2C_NONCE_PREFIX, NONCE_PREFIX_LEN),
    )


def _hmac(key: bytes, message: bytes) -> bytes:
    mac = hmac.HMAC(key, _SHA256)
    mac.update(message)
    return mac.finalize()


def auth_tag(psk: bytes, th: bytes, timestamp_unix_s: int) -> bytes:
    """The client's ack proof: HMAC(PSK, th ‖ u64(ts)) (§7.4)."""
    return _hmac(psk, th + timestamp_unix_s.to_bytes(8, "big"))


def rekey_key(rekey_base: bytes, th: bytes, seq: int, direction: Direction) -> bytes:
    """Key for ``direction`` after the rekey record at ``seq`` (§10.1)."""
    salt = _hmac(rekey_base, th + seq.to_bytes(8, "big") + bytes((direction,)))
    prk = HKDF.extract(_SHA256, salt, LABEL_REKEY_IKM)
    return _expand(prk, LABEL_REKEY_KEY, KEY_LEN)
