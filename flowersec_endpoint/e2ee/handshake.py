"""Client and server handshake state machines (e2ee.md §5).

Sans-I/O: each machine is fed whole binary messages and returns the message
to send back. Randomness and the wall clock are injected, so a run with
fixed inputs reproduces the reference's bytes exactly.
"""

from __future__ import annotations

import hmac
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from flowersec_endpoint.e2ee.cache import CacheEntry, HandshakeCache
from flowersec_endpoint.e2ee.constants import (
    AUTH_TAG_LEN,
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_HANDSHAKE_PAYLOAD,
    DEFAULT_MAX_RECORD_BYTES,
    HANDSHAKE_ID_RANDOM_LEN,
    NONCE_LEN,
    PROTOCOL_VERSION,
    PSK_LEN,
    RECORD_OVERHEAD,
    HandshakeType,
    RecordFlags,
    Role,
    Suite,
)
from flowersec_endpoint.e2ee.errors import E2EEError, RecordError, handshake_failed
from flowersec_endpoint.e2ee.frames import decode_handshake, encode_handshake
from flowersec_endpoint.e2ee.keyschedule import (
    EphemeralKey,
    Random,
    auth_tag,
    derive_session_keys,
    public_key_length,
    transcript_hash,
)
from flowersec_endpoint.e2ee.messages import E2EEAck, E2EEInit, E2EEResp
from flowersec_endpoint.e2ee.records import RecordLayer
from flowersec_endpoint.encoding import (
    INT64_MAX,
    UINT32_MAX,
    DecodeError,
    b64u_decode,
    b64u_encode,
)
from flowersec_endpoint.errors import Code, Stage

_CHANNEL_ID_MAX_BYTES = 0xFFFF

Clock = Callable[[], float]
"""Wall clock in Unix seconds (``time.time`` in production)."""


def _validate_config(
    psk: bytes, channel_id: str, suite: int, init_exp: int | None = None
) -> Suite:
    """Configuration checks before any I/O, in the reference's order."""
    if not channel_id:
        raise E2EEError(Stage.VALIDATE, Code.MISSING_CHANNEL_ID, "missing channel_id")
    try:
        channel_bytes = len(channel_id.encode("utf-8"))
    except UnicodeEncodeError:
        channel_bytes = -1
    if not 0 < channel_bytes <= _CHANNEL_ID_MAX_BYTES:
        raise E2EEError(
            Stage.VALIDATE, Code.INVALID_INPUT, "channel_id: not 1..65535 UTF-8 bytes"
        )
    if init_exp is not None and init_exp <= 0:
        raise E2EEError(Stage.VALIDATE, Code.MISSING_INIT_EXP, "missing init_exp")
    if len(psk) != PSK_LEN:
        raise E2EEError(Stage.VALIDATE, Code.INVALID_PSK, "PSK must be 32 bytes")
    if suite not in (1, 2):
        raise E2EEError(Stage.VALIDATE, Code.INVALID_SUITE, "suite must be 1 or 2")
    return Suite(suite)


def _validate_options(features: int, max_payload: int, max_record: int) -> None:
    if not 0 <= features <= UINT32_MAX:
        raise E2EEError(Stage.VALIDATE, Code.INVALID_OPTION, "features: not a u32")
    if max_payload < 0:
        raise E2EEError(
            Stage.VALIDATE, Code.INVALID_OPTION, "max_handshake_payload < 0"
        )
    if max_record != 0 and max_record <= RECORD_OVERHEAD:
        raise E2EEError(
            Stage.VALIDATE, Code.INVALID_OPTION, "max_record_bytes leaves no room"
        )


def _decode_b64u(text: str, what: str) -> bytes:
    try:
        return b64u_decode(text, canonical=True)
    except DecodeError as exc:
        raise handshake_failed(f"{what}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """What the connecting endpoint needs for its handshake."""

    psk: bytes
    channel_id: str
    suite: int = Suite.X25519_HKDF_SHA256_AES_256_GCM
    client_features: int = 0
    max_handshake_payload: int = DEFAULT_MAX_HANDSHAKE_PAYLOAD
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What the serving endpoint needs; ``init_exp`` bounds the ack time.

    ``clock_skew`` is used as given (negative counts as 0, fractions round
    up); the reference's "0 means 30 s" option rule belongs to callers.
    """

    psk: bytes
    channel_id: str
    init_exp: int
    suite: int = Suite.X25519_HKDF_SHA256_AES_256_GCM
    clock_skew: float = DEFAULT_CLOCK_SKEW
    server_features: int = 0
    max_handshake_payload: int = DEFAULT_MAX_HANDSHAKE_PAYLOAD
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES


class _State(Enum):
    START = auto()
    WAIT_RESP = auto()
    WAIT_INIT = auto()
    WAIT_ACK = auto()
    WAIT_FINISHED = auto()
    DONE = auto()
    FAILED = auto()


class _Machine:
    """Shared bookkeeping: the state, and failure as a terminal state."""

    _state: _State
    _records: RecordLayer | None = None

    @property
    def done(self) -> bool:
        """True once the channel is established."""
        return self._state is _State.DONE

    @property
    def records(self) -> RecordLayer:
        """The record layer of the established channel."""
        if self._state is not _State.DONE or self._records is None:
            raise RuntimeError("handshake not finished")
        return self._records

    def _check(self, *expected: _State) -> None:
        if self._state not in expected:
            raise RuntimeError(f"handshake is in state {self._state.name}")


class ClientHandshake(_Machine):
    """Initiator: ``start()``, then ``receive()`` the resp and the finished ping.

    :meth:`receive` returns the ack for the resp and ``None`` once the
    server-finished record checks out (:attr:`done` becomes true).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        rng: Random | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._suite = _validate_config(config.psk, config.channel_id, config.suite)
        _validate_options(
            config.client_features,
            config.max_handshake_payload,
            config.max_record_bytes,
        )
        self._config = config
        self._rng = rng
        self._random: Random = rng or os.urandom
        self._clock = clock
        self._state = _State.START
        self._key: EphemeralKey | None = None
        self._nonce_c = b""
        self.init_frame = b""

    def start(self) -> bytes:
        """Draw the key pair and nonce; return the init frame.

        A retry on the same connection must resend :attr:`init_frame` as is.
        """
        self._check(_State.START)
        self._key = EphemeralKey.generate(self._suite, self._rng)
        self._nonce_c = self._random(NONCE_LEN)
        init = E2EEInit(
            channel_id=self._config.channel_id,
            role=Role.CLIENT,
            version=PROTOCOL_VERSION,
            suite=self._suite,
            client_eph_pub_b64u=b64u_encode(self._key.public),
            nonce_c_b64u=b64u_encode(self._nonce_c),
            client_features=self._config.client_features,
        )
        self.init_frame = encode_handshake(HandshakeType.INIT, init.to_json())
        self._state = _State.WAIT_RESP
        return self.init_frame

    def receive(self, message: bytes) -> bytes | None:
        """Feed the next binary message from the server."""
        self._check(_State.WAIT_RESP, _State.WAIT_FINISHED)
        try:
            if self._state is _State.WAIT_RESP:
                return self._on_resp(message)
            self._on_finished(message)
            return None
        except E2EEError:
            self._state = _State.FAILED
            raise

    def _on_resp(self, message: bytes) -> bytes:
        assert self._key is not None
        msg_type, payload = decode_handshake(
            message, self._config.max_handshake_payload
        )
        if msg_type != HandshakeType.RESP:
            raise handshake_failed("unexpected handshake type")
        resp = E2EEResp.parse(payload)
        if not resp.handshake_id:
            raise handshake_failed("resp: missing handshake_id")
        nonce_s = _decode_b64u(resp.nonce_s_b64u, "resp nonce_s")
        if len(nonce_s) != NONCE_LEN:
            raise handshake_failed("resp: nonce_s must be 32 bytes")
        server_pub = _decode_b64u(resp.server_eph_pub_b64u, "resp server key")
        if len(server_pub) != public_key_length(self._suite):
            raise handshake_failed("resp: bad server key length")
        shared = self._key.exchange(server_pub)
        th = transcript_hash(
            version=PROTOCOL_VERSION,
            suite=self._suite,
            role=Role.CLIENT,
            client_features=self._config.client_features,
            server_features=resp.server_features,
            channel_id=self._config.channel_id,
            nonce_c=self._nonce_c,
            nonce_s=nonce_s,
            client_pub=self._key.public,
            server_pub=server_pub,
        )
        keys = derive_session_keys(self._config.psk, shared, th)
        timestamp = math.floor(self._clock())
        ack = E2EEAck(
            handshake_id=resp.handshake_id,
            timestamp_unix_s=timestamp,
            auth_tag_b64u=b64u_encode(auth_tag(self._config.psk, th, timestamp)),
        )
        self._records = RecordLayer(
            keys, Role.CLIENT, max_record_bytes=self._config.max_record_bytes
        )
        self._state = _State.WAIT_FINISHED
        return encode_handshake(HandshakeType.ACK, ack.to_json())

    def _on_finished(self, message: bytes) -> None:
        assert self._records is not None
        try:
            flags, plaintext = self._records.open(message)
        except RecordError as exc:
            raise handshake_failed(
                f"expected server-finished ping: {exc.reason}"
            ) from exc
        if flags != RecordFlags.PING or plaintext:
            raise handshake_failed("expected server-finished ping")
        self._state = _State.DONE


def peek_init(
    message: bytes, max_payload: int = DEFAULT_MAX_HANDSHAKE_PAYLOAD
) -> E2EEInit:
    """Decode a first message as an init, for servers that pick the PSK by it.

    Applies the checks the Go resolving server makes before resolving:
    type init, non-empty ``channel_id``, version 1, role client.
    """
    msg_type, payload = decode_handshake(message, max_payload)
    if msg_type != HandshakeType.INIT:
        raise handshake_failed("unexpected handshake type")
    init = E2EEInit.parse(payload)
    if not init.channel_id:
        raise E2EEError(Stage.VALIDATE, Code.MISSING_CHANNEL_ID, "missing channel_id")
    if init.version != PROTOCOL_VERSION:
        raise E2EEError(Stage.HANDSHAKE, Code.INVALID_VERSION, "init: bad version")
    if init.role != Role.CLIENT:
        raise handshake_failed("init: role must be client")
    return init


class ServerHandshake(_Machine):
    """Responder: ``receive()`` the init (and retries), then the ack.

    Returns the resp for each init and the server-finished record for the
    ack, after which :attr:`done` is true. Without a shared ``cache`` each
    handshake gets its own, as the reference endpoint helpers do.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        cache: HandshakeCache | None = None,
        rng: Random | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._suite = _validate_config(
            config.psk, config.channel_id, config.suite, config.init_exp
        )
        _validate_options(
            config.server_features,
            config.max_handshake_payload,
            config.max_record_bytes,
        )
        self._config = config
        self._cache = cache if cache is not None else HandshakeCache()
        self._rng = rng
        self._random: Random = rng or os.urandom
        self._clock = clock
        self._state = _State.WAIT_INIT
        self._init: E2EEInit | None = None
        self._fingerprint = b""
        self._entry: CacheEntry | None = None
        self._client_pub = b""
        self._nonce_c = b""
        self._resp_frame = b""

    def receive(self, message: bytes) -> bytes:
        """Feed the next binary message from the client; return the reply."""
        self._check(_State.WAIT_INIT, _State.WAIT_ACK)
        try:
            if self._state is _State.WAIT_INIT:
                return self._on_init(message)
            return self._on_ack_or_retry(message)
        except E2EEError:
            self._state = _State.FAILED
            raise

    def _on_init(self, message: bytes) -> bytes:
        msg_type, payload = decode_handshake(
            message, self._config.max_handshake_payload
        )
        if msg_type != HandshakeType.INIT:
            raise handshake_failed("unexpected handshake type")
        init = E2EEInit.parse(payload)
        self._check_init(init)
        self._init = init
        self._fingerprint = init.fingerprint()
        self._entry = self._cache.lookup_or_create(self._fingerprint, self._new_entry)
        resp = E2EEResp(
            handshake_id=self._entry.handshake_id,
            server_eph_pub_b64u=b64u_encode(self._entry.key.public),
            nonce_s_b64u=b64u_encode(self._entry.nonce_s),
            server_features=self._entry.server_features,
        )
        self._resp_frame = encode_handshake(HandshakeType.RESP, resp.to_json())
        self._state = _State.WAIT_ACK
        return self._resp_frame

    def _check_init(self, init: E2EEInit) -> None:
        if init.version != PROTOCOL_VERSION:
            raise E2EEError(Stage.HANDSHAKE, Code.INVALID_VERSION, "init: bad version")
        if init.role != Role.CLIENT:
            raise handshake_failed("init: role must be client")
        if not init.channel_id or not hmac.compare_digest(
            init.channel_id.encode("utf-8"), self._config.channel_id.encode("utf-8")
        ):
            raise handshake_failed("init: channel mismatch")
        if init.suite != self._suite:
            raise handshake_failed("init: unsupported suite")
        client_pub = _decode_b64u(init.client_eph_pub_b64u, "init client key")
        nonce_c = _decode_b64u(init.nonce_c_b64u, "init nonce_c")
        if len(nonce_c) != NONCE_LEN:
            raise handshake_failed("init: nonce_c must be 32 bytes")
        if len(client_pub) != public_key_length(self._suite):
            raise handshake_failed("init: bad client key length")
        self._client_pub = client_pub
        self._nonce_c = nonce_c

    def _new_entry(self, now: float) -> CacheEntry:
        key = EphemeralKey.generate(self._suite, self._rng)
        nonce_s = self._random(NONCE_LEN)
        handshake_id = b64u_encode(self._random(HANDSHAKE_ID_RANDOM_LEN))
        return CacheEntry(
            suite=self._suite,
            key=key,
            nonce_s=nonce_s,
            handshake_id=handshake_id,
            server_features=self._config.server_features,
            created_at=now,
        )

    def _on_ack_or_retry(self, message: bytes) -> bytes:
        msg_type, payload = decode_handshake(
            message, self._config.max_handshake_payload
        )
        if msg_type == HandshakeType.INIT:
            retry = E2EEInit.parse(payload)
            if retry.fingerprint() != self._fingerprint:
                raise handshake_failed("unexpected init retry parameters")
            return self._resp_frame
        if msg_type != HandshakeType.ACK:
            raise handshake_failed("unexpected handshake type")
        return self._on_ack(E2EEAck.parse(payload))

    def _on_ack(self, ack: E2EEAck) -> bytes:
        assert self._init is not None and self._entry is not None
        entry = self._entry
        if ack.handshake_id != entry.handshake_id:
            raise handshake_failed("handshake_id mismatch")
        self._check_time(ack.timestamp_unix_s)
        tag = _decode_b64u(ack.auth_tag_b64u, "ack auth tag")
        if len(tag) != AUTH_TAG_LEN:
            raise handshake_failed("ack: auth tag must be 32 bytes")
        th = transcript_hash(
            version=PROTOCOL_VERSION,
            suite=entry.suite,
            role=Role.CLIENT,
            client_features=self._init.client_features,
            server_features=entry.server_features,
            channel_id=self._init.channel_id,
            nonce_c=self._nonce_c,
            nonce_s=entry.nonce_s,
            client_pub=self._client_pub,
            server_pub=entry.key.public,
        )
        expected = auth_tag(self._config.psk, th, ack.timestamp_unix_s)
        if not hmac.compare_digest(tag, expected):
            raise E2EEError(
                Stage.HANDSHAKE, Code.AUTH_TAG_MISMATCH, "auth tag mismatch"
            )
        shared = entry.key.exchange(self._client_pub)
        keys = derive_session_keys(self._config.psk, shared, th)
        self._cache.delete(self._fingerprint)
        records = RecordLayer(
            keys, Role.SERVER, max_record_bytes=self._config.max_record_bytes
        )
        finished = records.seal_ping()
        self._records = records
        self._state = _State.DONE
        return bytes(finished)

    def _check_time(self, timestamp: int) -> None:
        skew = math.ceil(max(0.0, self._config.clock_skew))
        now = self._clock()
        if timestamp < now - skew or timestamp > now + skew:
            raise E2EEError(
                Stage.HANDSHAKE, Code.TIMESTAMP_OUT_OF_SKEW, "timestamp out of skew"
            )
        if timestamp > min(self._config.init_exp + skew, INT64_MAX):
            raise E2EEError(
                Stage.HANDSHAKE,
                Code.TIMESTAMP_AFTER_INIT_EXP,
                "timestamp after init_exp",
            )
