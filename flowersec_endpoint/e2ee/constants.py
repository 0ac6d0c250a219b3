"""Wire constants and default limits of the E2EE layer (e2ee.md §2, §13)."""

from __future__ import annotations

from enum import IntEnum

HANDSHAKE_MAGIC = b"FSEH"
RECORD_MAGIC = b"FSEC"
PROTOCOL_VERSION = 1

HANDSHAKE_HEADER_LEN = 10
RECORD_HEADER_LEN = 18
TAG_LEN = 16
RECORD_OVERHEAD = RECORD_HEADER_LEN + TAG_LEN
NONCE_LEN = 32
PSK_LEN = 32
KEY_LEN = 32
NONCE_PREFIX_LEN = 4
AUTH_TAG_LEN = 32
HANDSHAKE_ID_RANDOM_LEN = 24

DEFAULT_MAX_HANDSHAKE_PAYLOAD = 8192
DEFAULT_MAX_RECORD_BYTES = 1 << 20
DEFAULT_MAX_BUFFERED_BYTES = 4 << 20
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_CLOCK_SKEW = 30.0
DEFAULT_CACHE_TTL = 60.0
DEFAULT_CACHE_MAX_ENTRIES = 4096

FEATURE_REKEY = 1

SEQ_LIMIT = 1 << 64

TRANSCRIPT_PREFIX = b"flowersec-e2ee-v1"
LABEL_C2S_KEY = b"flowersec-e2ee-v1:c2s:key"
LABEL_S2C_KEY = b"flowersec-e2ee-v1:s2c:key"
LABEL_REKEY_BASE = b"flowersec-e2ee-v1:rekey_base"
LABEL_C2S_NONCE_PREFIX = b"flowersec-e2ee-v1:c2s:nonce_prefix"
LABEL_S2C_NONCE_PREFIX = b"flowersec-e2ee-v1:s2c:nonce_prefix"
LABEL_REKEY_IKM = b"flowersec-e2ee-v1:rekey"
LABEL_REKEY_KEY = b"flowersec-e2ee-v1:rekey:key"


class HandshakeType(IntEnum):
    """Type byte of an ``FSEH`` frame."""

    INIT = 1
    RESP = 2
    ACK = 3


class RecordFlags(IntEnum):
    """Flags byte of an ``FSEC`` record."""

    APP = 0
    PING = 1
    REKEY = 2


class Role(IntEnum):
    """Protocol role; only ``CLIENT`` appears on the wire and in transcripts."""

    CLIENT = 1
    SERVER = 2


class Suite(IntEnum):
    """Cipher suite: the key agreement varies, HKDF and AES-256-GCM do not."""

    X25519_HKDF_SHA256_AES_256_GCM = 1
    P256_HKDF_SHA256_AES_256_GCM = 2


class Direction(IntEnum):
    """Traffic direction, an input of the rekey derivation."""

    C2S = 1
    S2C = 2
