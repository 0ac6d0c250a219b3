"""RPC framing and envelope codecs (mux-rpc.md §4.1-4.3)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.rpc import (
    Envelope,
    EnvelopeError,
    FrameDecoder,
    MessageKind,
    RpcFramingError,
    WireError,
    decode_envelope,
    encode_envelope,
    encode_frame,
)


def framed(envelope: Envelope) -> bytes:
    return encode_frame(encode_envelope(envelope))


def test_spec_examples() -> None:
    assert framed(Envelope(1, 1, 0, {})) == bytes.fromhex("00000039") + (
        b'{"type_id":1,"request_id":1,"response_to":0,"payload":{}}'
    )
    assert framed(Envelope(2, 0, 0, {"hello": "world"})) == bytes.fromhex(
        "00000048"
    ) + (b'{"type_id":2,"request_id":0,"response_to":0,"payload":{"hello":"world"}}')
    assert framed(Envelope(1, 0, 1, {"ok": True})) == bytes.fromhex("00000042") + (
        b'{"type_id":1,"request_id":0,"response_to":1,"payload":{"ok":true}}'
    )
    error = Envelope(99, 0, 5, None, WireError(404, "handler not found"))
    assert framed(error) == bytes.fromhex("0000006f") + (
        b'{"type_id":99,"request_id":0,"response_to":5,"payload":null,'
        b'"error":{"code":404,"message":"handler not found"}}'
    )


def test_kinds_and_lenient_decode() -> None:
    assert decode_envelope(b'{"type_id":3}') == Envelope(3)
    assert decode_envelope(b'{"type_id":3}').kind is MessageKind.NOTIFICATION
    assert decode_envelope(b'{"type_id":1,"request_id":9}').kind is MessageKind.REQUEST
    response = decode_envelope(
        b'{"type_id":1,"request_id":4,"response_to":9,"error":{"code":7}}'
    )
    assert response.kind is MessageKind.RESPONSE
    assert response.error == WireError(7, None)
    big = decode_envelope(b'{"type_id":1,"request_id":18446744073709551615}')
    assert big.request_id == 2**64 - 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"null",
        b"[1]",
        b'{"type_id":-1}',
        b'{"type_id":4294967296}',
        b'{"type_id":"1"}',
        b'{"type_id":1,"request_id":1.5}',
        b'{"type_id":1,"request_id":18446744073709551616}',
        b'{"type_id":1,"error":"x"}',
        b'{"type_id":1,"error":{"code":1,"message":3}}',
        b'{"type_id":true}',
        b"\xff",
        b'{"type_id":NaN}',
    ],
)
def test_invalid_envelopes(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_envelope(data)


def test_frame_limits() -> None:
    payload = b"x" * (1 << 20)
    assert len(encode_frame(payload)) == 4 + (1 << 20)
    with pytest.raises(RpcFramingError):
        encode_frame(payload + b"x")
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x10\x00\x00") == []
    with pytest.raises(RpcFramingError):
        FrameDecoder().feed(b"\x00\x10\x00\x01")
    assert FrameDecoder().feed(b"\x00\x00\x00\x00\x00\x00\x00\x01a") == [b"", b"a"]


@given(st.lists(st.binary(max_size=50), max_size=6), st.integers(1, 7))
def test_frame_decoder_any_split(frames: list[bytes], step: int) -> None:
    wire = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder(64)
    got: list[bytes] = []
    for i in range(0, len(wire), step):
        got.extend(decoder.feed(wire[i : i + step]))
    assert got == frames
    assert decoder.buffered == 0


@given(st.binary(max_size=80))
def test_frame_decoder_only_framing_error(data: bytes) -> None:
    with contextlib.suppress(RpcFramingError):
        FrameDecoder(32).feed(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**53 - 1),
    st.integers(0, 2**53 - 1),
    json_values,
    st.none() | st.builds(WireError, st.integers(0, 2**32 - 1), st.none() | st.text()),
)
def test_envelope_roundtrip(
    type_id: int, request_id: int, response_to: int, payload: object, error: object
) -> None:
    envelope = Envelope(type_id, request_id, response_to, payload, error)  # type: ignore[arg-type]
    data = encode_envelope(envelope)
    assert list(json.loads(data))[:4] == [
        "type_id",
        "request_id",
        "response_to",
        "payload",
    ]
    assert decode_envelope(data) == envelope


@given(st.binary(max_size=120) | st.text(max_size=60).map(str.encode))
def test_envelope_decoder_only_documented_error(data: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode_envelope(data)


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope(1, 1, 0, float("nan")),
        Envelope(1, 1, 0, {"x": [float("inf")]}),
        Envelope(2**32, 1, 0, None),
        Envelope(-1, 1, 0, None),
        Envelope(True, 1, 0, None),
        Envelope(1, 2**64, 0, None),
        Envelope(1, -1, 0, None),
        Envelope(1, 0, 2**64, None),
        Envelope(1, 0, 1, None, WireError(2**32, "x")),
        Envelope(1, 0, 1, None, WireError(-1, "x")),
    ],
)
def test_encode_refuses_what_a_strict_reader_rejects(envelope: Envelope) -> None:
    with pytest.raises(ValueError):
        encode_envelope(envelope)


def test_encode_accepts_u64_response_to_from_go_callers() -> None:
    data = encode_envelope(Envelope(1, 0, 2**64 - 1, None))
    assert data == (
        b'{"type_id":1,"request_id":0,"response_to":18446744073709551615,'
        b'"payload":null}'
    )
