"""``FSEC`` record layer: seal, open, sequence numbers and rekey (§9, §10).

A :class:`RecordLayer` is the established state of one side. It is fed whole
frames and returns whole frames; the caller moves them and must keep the
order in which :meth:`RecordLayer.seal` produced them.

The receiver hands back one record's plaintext per :meth:`RecordLayer.open`
and keeps nothing, so the spec's 4 MiB unread-plaintext bound is met by
construction: the only buffered plaintext is the record just returned.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowersec_endpoint.e2ee.constants import (
    DEFAULT_MAX_RECORD_BYTES,
    PROTOCOL_VERSION,
    RECORD_HEADER_LEN,
    RECORD_MAGIC,
    RECORD_OVERHEAD,
    SEQ_LIMIT,
    TAG_LEN,
    Direction,
    RecordFlags,
    Role,
)
from flowersec_endpoint.e2ee.errors import RecordError, RecordFailure
from flowersec_endpoint.e2ee.keyschedule import SessionKeys, rekey_key

_HEADER = struct.Struct(">4sBBQI")
_VALID_FLAGS = frozenset(RecordFlags)


def seal_record(
    aead: AESGCM,
    nonce_prefix: bytes,
    flags: int,
    seq: int,
    plaintext: bytes | memoryview,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> bytearray:
    """Encrypt one record; the whole header is the associated data.

    The ciphertext is written straight into the frame buffer: for large
    records one fresh buffer is much cheaper than ciphertext plus a joined
    copy.
    """
    size = len(plaintext)
    if max_record_bytes > 0 and size + RECORD_OVERHEAD > max_record_bytes:
        raise ValueError("record exceeds max_record_bytes")
    frame = bytearray(RECORD_OVERHEAD + size)
    _HEADER.pack_into(
        frame, 0, RECORD_MAGIC, PROTOCOL_VERSION, flags, seq, size + TAG_LEN
    )
    view = memoryview(frame)
    nonce = nonce_prefix + seq.to_bytes(8, "big")
    aead.encrypt_into(
        nonce, plaintext, view[:RECORD_HEADER_LEN], view[RECORD_HEADER_LEN:]
    )
    return frame


def open_record(
    aead: AESGCM,
    nonce_prefix: bytes,
    expected_seq: int,
    frame: bytes | bytearray,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> tuple[int, bytes]:
    """Check and decrypt one record in the order of §9.3; ``(flags, data)``."""
    size = len(frame)
    if max_record_bytes > 0 and size > max_record_bytes:
        raise RecordError(RecordFailure.RECORD_TOO_LARGE)
    if size < RECORD_HEADER_LEN:
        raise RecordError(RecordFailure.INVALID_LENGTH)
    magic, version, flags, seq, length = _HEADER.unpack_from(frame)
    if magic != RECORD_MAGIC:
        raise RecordError(RecordFailure.INVALID_MAGIC)
    if version != PROTOCOL_VERSION:
        raise RecordError(RecordFailure.BAD_VERSION)
    if flags not in _VALID_FLAGS:
        raise RecordError(RecordFailure.BAD_FLAG)
    if seq != expected_seq:
        raise RecordError(
            RecordFailure.BAD_SEQ, f"bad_seq: got {seq}, expected {expected_seq}"
        )
    if RECORD_HEADER_LEN + length != size:
        raise RecordError(RecordFailure.INVALID_LENGTH)
    nonce = nonce_prefix + seq.to_bytes(8, "big")
    view = memoryview(frame)
    try:
        plaintext = aead.decrypt(
            nonce, view[RECORD_HEADER_LEN:], view[:RECORD_HEADER_LEN]
        )
    except InvalidTag as exc:
        raise RecordError(RecordFailure.DECRYPT_FAILED) from exc
    return flags, plaintext


class RecordLayer:
    """Both directions of an established channel for one local role.

    The server starts sending at seq 1 and its handshake seals the
    server-finished ping first; the client starts expecting seq 1 and its
    handshake opens that ping first. Afterwards the counters sit where §5
    says (server sends from 2, client receives from 2).

    Any failure while opening is sticky: later calls raise the same error.
    """

    def __init__(
        self,
        keys: SessionKeys,
        role: Role,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        if max_record_bytes != 0 and max_record_bytes <= RECORD_OVERHEAD:
            raise ValueError("max_record_bytes leaves no room for plaintext")
        self._th = keys.transcript_hash
        self._rekey_base = keys.rekey_base
        self.max_record_bytes = max_record_bytes
        if role is Role.CLIENT:
            self._send_dir, self._recv_dir = Direction.C2S, Direction.S2C
            send_key, send_prefix = keys.c2s_key, keys.c2s_nonce_prefix
            recv_key, recv_prefix = keys.s2c_key, keys.s2c_nonce_prefix
        else:
            self._send_dir, self._recv_dir = Direction.S2C, Direction.C2S
            send_key, send_prefix = keys.s2c_key, keys.s2c_nonce_prefix
            recv_key, recv_prefix = keys.c2s_key, keys.c2s_nonce_prefix
        self._send_aead = AESGCM(send_key)
        self._send_prefix = send_prefix
        self._recv_aead = AESGCM(recv_key)
        self._recv_prefix = recv_prefix
        self.send_seq = 1
        self.recv_seq = 1
        self._failed: RecordError | None = None

    @property
    def max_plaintext(self) -> int:
        """Largest plaintext one record may carry (0: unlimited)."""
        if self.max_record_bytes == 0:
            return 0
        return self.max_record_bytes - RECORD_OVERHEAD

    @property
    def failure(self) -> RecordError | None:
        """The sticky error, once the layer has failed."""
        return self._failed

    def fail(self, error: RecordError) -> RecordError:
        """Mark the layer failed (first error wins) and return the error kept."""
        if self._failed is None:
            self._failed = error
        return self._failed

    def seal(
        self, flags: RecordFlags, plaintext: bytes | memoryview = b""
    ) -> bytearray:
        """Seal one record at the next send seq (the plaintext must fit)."""
        if self._failed is not None:
            raise self._failed
        seq = self.send_seq
        if seq >= SEQ_LIMIT:
            raise self.fail(RecordError(RecordFailure.SEQ_EXHAUSTED))
        frame = seal_record(
            self._send_aead,
            self._send_prefix,
            flags,
            seq,
            plaintext,
            self.max_record_bytes,
        )
        self.send_seq = seq + 1
        return frame

    def seal_app(self, data: bytes | bytearray | memoryview) -> Iterator[bytearray]:
        """Yield app records for ``data``, chunked at the record limit.

        Lazy, so a large write holds one sealed chunk at a time; the caller
        must send each frame before drawing the next. Empty data yields
        nothing.
        """
        view = memoryview(data)
        step = self.max_plaintext or max(len(view), 1)
        for start in range(0, len(view), step):
            yield self.seal(RecordFlags.APP, view[start : start + step])

    def seal_ping(self) -> bytearray:
        """An empty keepalive record."""
        return self.seal(RecordFlags.PING)

    def seal_rekey(self) -> bytearray:
        """An empty rekey record under the old key; later records use the new."""
        frame = self.seal(RecordFlags.REKEY)
        new_key = rekey_key(
            self._rekey_base, self._th, self.send_seq - 1, self._send_dir
        )
        self._send_aead = AESGCM(new_key)
        return frame

    def open(self, frame: bytes | bytearray) -> tuple[int, bytes]:
        """Open the next record and apply rekeys; ``(flags, plaintext)``.

        Ping and rekey records come back too (with their flags) so the caller
        can skip them; any error is fatal and sticky.
        """
        if self._failed is not None:
            raise self._failed
        seq = self.recv_seq
        try:
            flags, plaintext = open_record(
                self._recv_aead, self._recv_prefix, seq, frame, self.max_record_bytes
            )
        except RecordError as exc:
            raise self.fail(exc) from None
        self.recv_seq = seq + 1
        if flags == RecordFlags.REKEY:
            new_key = rekey_key(self._rekey_base, self._th, seq, self._recv_dir)
            self._recv_aead = AESGCM(new_key)
        return flags, plaintext
