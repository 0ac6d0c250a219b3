"""Yamux (HashiCorp protocol version 0) as the Flowersec peers speak it."""

from flowersec_endpoint.yamux.core import Role, SessionCore, StreamCore, StreamState
from flowersec_endpoint.yamux.errors import Reason, YamuxError
from flowersec_endpoint.yamux.frame import Flag, FrameType, GoAwayCode
from flowersec_endpoint.yamux.session import (
    ByteChannel,
    YamuxConfig,
    YamuxSession,
    YamuxStream,
)

__all__ = [
    "ByteChannel",
    "Flag",
    "FrameType",
    "GoAwayCode",
    "Reason",
    "Role",
    "SessionCore",
    "StreamCore",
    "StreamState",
    "YamuxConfig",
    "YamuxError",
    "YamuxSession",
    "YamuxStream",
]
