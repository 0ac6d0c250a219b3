"""End-to-end encryption: the FSEH handshake and FSEC records (e2ee.md).

The sans-I/O core (frames, messages, key schedule, handshake machines,
record layer, handshake cache) has no I/O; :mod:`.channel` runs it over a
:class:`~flowersec_endpoint.transport.MessageTransport` with asyncio.
"""

from flowersec_endpoint.e2ee.cache import HandshakeCache
from flowersec_endpoint.e2ee.channel import (
    SecureChannel,
    client_handshake,
    default_keepalive_interval,
    server_handshake,
)
from flowersec_endpoint.e2ee.constants import RecordFlags, Role, Suite
from flowersec_endpoint.e2ee.errors import (
    E2EEError,
    RecordError,
    RecordFailure,
    SecureChannelError,
)
from flowersec_endpoint.e2ee.handshake import (
    ClientConfig,
    ClientHandshake,
    ServerConfig,
    ServerHandshake,
    peek_init,
)
from flowersec_endpoint.e2ee.records import RecordLayer

__all__ = [
    "ClientConfig",
    "ClientHandshake",
    "E2EEError",
    "HandshakeCache",
    "RecordError",
    "RecordFailure",
    "RecordFlags",
    "RecordLayer",
    "Role",
    "SecureChannel",
    "SecureChannelError",
    "ServerConfig",
    "ServerHandshake",
    "Suite",
    "client_handshake",
    "default_keepalive_interval",
    "peek_init",
    "server_handshake",
]
