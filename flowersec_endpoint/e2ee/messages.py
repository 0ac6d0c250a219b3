"""Handshake JSON messages: init, resp and ack (e2ee.md §4).

Parsing checks JSON types and integer ranges only; the protocol rules
(version, role, key lengths, ...) belong to the handshake machines, which
apply them in the reference's order.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from flowersec_endpoint.e2ee.errors import handshake_failed
from flowersec_endpoint.encoding import (
    INT8_MAX,
    INT16_MAX,
    UINT32_MAX,
    DecodeError,
    dumps_compact,
    loads_object,
    read_int,
    read_str,
)

UINT64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class E2EEInit:
    """Client → server: the client's key share and nonce."""

    channel_id: str
    role: int
    version: int
    suite: int
    client_eph_pub_b64u: str
    nonce_c_b64u: str
    client_features: int

    def to_json(self) -> bytes:
        """Compact JSON in the reference's key order."""
        return dumps_compact(
            {
                "channel_id": self.channel_id,
                "role": self.role,
                "version": self.version,
                "suite": self.suite,
                "client_eph_pub_b64u": self.client_eph_pub_b64u,
                "nonce_c_b64u": self.nonce_c_b64u,
                "client_features": self.client_features,
            }
        )

    @classmethod
    def parse(cls, payload: bytes) -> E2EEInit:
        """Decode an init payload; raises :class:`E2EEError`."""
        try:
            obj = loads_object(payload)
            return cls(
                channel_id=read_str(obj, "channel_id"),
                role=read_int(obj, "role", 0, INT8_MAX),
                version=read_int(obj, "version", 0, INT8_MAX),
                suite=read_int(obj, "suite", 0, INT16_MAX),
                client_eph_pub_b64u=read_str(obj, "client_eph_pub_b64u"),
                nonce_c_b64u=read_str(obj, "nonce_c_b64u"),
                client_features=read_int(obj, "client_features", 0, UINT32_MAX),
            )
        except DecodeError as exc:
            raise handshake_failed(f"init: {exc}") from exc

    def fingerprint(self) -> bytes:
        """SHA-256 of the seven parsed fields, the server cache key (§12).

        Built from the parsed values, so key order, spacing and unknown keys
        of the received JSON do not change it.
        """
        digest = hashes.Hash(hashes.SHA256())
        digest.update(self.to_json())
        return digest.finalize()


@dataclass(frozen=True, slots=True)
class E2EEResp:
    """Server → client: the server's key share, nonce and handshake id."""

    handshake_id: str
    server_eph_pub_b64u: str
    nonce_s_b64u: str
    server_features: int

    def to_json(self) -> bytes:
        """Compact JSON in the reference's key order."""
        return dumps_compact(
            {
                "handshake_id": self.handshake_id,
                "server_eph_pub_b64u": self.server_eph_pub_b64u,
                "nonce_s_b64u": self.nonce_s_b64u,
                "server_features": self.server_features,
            }
        )

    @classmethod
    def parse(cls, payload: bytes) -> E2EEResp:
        """Decode a resp payload; raises :class:`E2EEError`."""
        try:
            obj = loads_object(payload)
            return cls(
                handshake_id=read_str(obj, "handshake_id"),
                server_eph_pub_b64u=read_str(obj, "server_eph_pub_b64u"),
                nonce_s_b64u=read_str(obj, "nonce_s_b64u"),
                server_features=read_int(obj, "server_features", 0, UINT32_MAX),
            )
        except DecodeError as exc:
            raise handshake_failed(f"resp: {exc}") from exc


@dataclass(frozen=True, slots=True)
class E2EEAck:
    """Client → server: the PSK-keyed proof over the transcript and time."""

    handshake_id: str
    timestamp_unix_s: int
    auth_tag_b64u: str

    def to_json(self) -> bytes:
        """Compact JSON in the reference's key order."""
        return dumps_compact(
            {
                "handshake_id": self.handshake_id,
                "timestamp_unix_s": self.timestamp_unix_s,
                "auth_tag_b64u": self.auth_tag_b64u,
            }
        )

    @classmethod
    def parse(cls, payload: bytes) -> E2EEAck:
        """Decode an ack payload; raises :class:`E2EEError`."""
        try:
            obj = loads_object(payload)
            return cls(
                handshake_id=read_str(obj, "handshake_id"),
                timestamp_unix_s=read_int(obj, "timestamp_unix_s", 0, UINT64_MAX),
                auth_tag_b64u=read_str(obj, "auth_tag_b64u"),
            )
        except DecodeError as exc:
            raise handshake_failed(f"ack: {exc}") from exc
