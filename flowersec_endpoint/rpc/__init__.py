"""RPC over a Flowersec stream: framing, envelopes, client, router, typed layer."""

from flowersec_endpoint.rpc.client import RpcClient
from flowersec_endpoint.rpc.envelope import (
    Envelope,
    EnvelopeError,
    MessageKind,
    WireError,
    decode_envelope,
    encode_envelope,
)
from flowersec_endpoint.rpc.errors import CallError, RpcClosedError, RpcError
from flowersec_endpoint.rpc.framing import (
    MAX_FRAME_BYTES,
    FrameDecoder,
    RpcFramingError,
    encode_frame,
)
from flowersec_endpoint.rpc.observer import RpcObserver
from flowersec_endpoint.rpc.server import Handler, Router, RpcServer

__all__ = [
    "MAX_FRAME_BYTES",
    "CallError",
    "Envelope",
    "EnvelopeError",
    "FrameDecoder",
    "Handler",
    "MessageKind",
    "Router",
    "RpcClient",
    "RpcClosedError",
    "RpcError",
    "RpcFramingError",
    "RpcObserver",
    "RpcServer",
    "WireError",
    "decode_envelope",
    "encode_envelope",
    "encode_frame",
]
