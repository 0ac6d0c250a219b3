"""The sans-I/O Yamux core against hand-written frames (mux-rpc.md §2)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_endpoint.yamux import Reason, Role, SessionCore, StreamState, YamuxError
from flowersec_endpoint.yamux.core import (
    DataReceived,
    PingAcked,
    StreamAcked,
    StreamEnded,
    StreamOpened,
    StreamReset,
)
from flowersec_endpoint.yamux.frame import FrameDecoder, FrameType

WINDOW = 256 * 1024


def hdr(type_: int, flags: int, sid: int, length: int) -> bytes:
    return struct.pack(">BBHII", 0, type_, flags, sid, length)


def drain(core: SessionCore) -> list[bytes]:
    frames = []
    while (item := core.next_frame()) is not None:
        frames.append(item[0])
    return frames


def test_open_sends_syn_bytes() -> None:
    core = SessionCore(Role.CLIENT)
    stream = core.open_stream()
    assert stream.id == 1
    assert drain(core) == [bytes.fromhex("000100010000000100000000")]
    assert core.open_stream().id == 3
    server = SessionCore(Role.SERVER)
    assert server.open_stream().id == 2


def test_inbound_syn_acked_immediately() -> None:
    core = SessionCore(Role.SERVER)
    events = core.receive_data(bytes.fromhex("000100010000000100000000"))
    assert events == [StreamOpened(1)]
    assert drain(core) == [bytes.fromhex("000100020000000100000000")]


def test_syn_on_data_frame_carries_data() -> None:
    core = SessionCore(Role.SERVER)
    events = core.receive_data(hdr(0, 1, 1, 3) + b"abc")
    assert events == [StreamOpened(1), DataReceived(1)]
    stream = core.get_stream(1)
    assert stream is not None
    assert stream.read(10) == b"abc"


def test_ack_and_fin_and_rst_bytes() -> None:
    core = SessionCore(Role.CLIENT)
    stream = core.open_stream()
    drain(core)
    assert core.unacked_streams == 1
    assert core.receive_data(hdr(1, 2, 1, 0)) == [StreamAcked(1)]
    assert stream.state is StreamState.ESTABLISHED
    assert core.unacked_streams == 0
    stream.close()
    stream.close()
    assert drain(core) == [bytes.fromhex("000100040000000100000000")]
    assert stream.state is StreamState.LOCAL_CLOSE
    other = core.open_stream()
    drain(core)
    other.reset()
    other.reset()
    assert drain(core) == [bytes.fromhex("000100080000000300000000")]


def test_fin_on_data_frame_and_close_order() -> None:
    core = SessionCore(Role.CLIENT)
    stream = core.open_stream()
    drain(core)
    events = core.receive_data(hdr(0, 2 | 4, 1, 2) + b"hi")
    assert events == [StreamAcked(1), DataReceived(1), StreamEnded(1)]
    assert stream.state is StreamState.REMOTE_CLOSE
    stream.write(b"tail")
    stream.close()
    frames = drain(core)
    assert frames == [hdr(0, 0, 1, 4) + b"tail", hdr(1, 4, 1, 0)]
    assert stream.state is StreamState.CLOSED
    assert core.get_stream(1) is None
    assert stream.read(10) == b"hi"
    assert stream.read(10) == b""
    assert stream.at_eof


def test_window_update_rule() -> None:
    core = SessionCore(Role.SERVER)
    core.receive_data(hdr(1, 1, 1, 0))
    drain(core)
    stream = core.get_stream(1)
    assert stream is not None
    core.receive_data(hdr(0, 0, 1, 100_000) + b"\0" * 100_000)
    stream.read(100_000)
    assert drain(core) == []
    core.receive_data(hdr(0, 0, 1, 40_000) + b"\0" * 40_000)
    stream.read(30_000)
    assert drain(core) == []
    stream.read(10_000)
    assert drain(core) == [hdr(1, 0, 1, 140_000)]
    assert stream.recv_window == WINDOW


def test_send_respects_window_and_updates() -> None:
    core = SessionCore(Role.CLIENT, max_frame_data=WINDOW)
    stream = core.open_stream()
    drain(core)
    stream.write(b"\1" * (WINDOW + 10))
    frames = drain(core)
    assert len(frames) == 1
    assert len(frames[0]) == 12 + WINDOW
    assert stream.send_window == 0
    assert stream.pending_send == 10
    core.receive_data(hdr(1, 0, 1, 131072))
    assert drain(core) == [hdr(0, 0, 1, 10) + b"\1" * 10]


def test_ping_reply_and_own_ping() -> None:
    core = SessionCore(Role.SERVER)
    core.receive_data(bytes.fromhex("000200010000000000000007"))
    assert drain(core) == [bytes.fromhex("000200020000000000000007")]
    opaque = core.ping()
    assert drain(core) == [hdr(2, 1, 0, opaque)]
    assert core.receive_data(hdr(2, 2, 0, opaque)) == [PingAcked(opaque)]


def test_unknown_stream_frames_ignored_rst_not_echoed() -> None:
    core = SessionCore(Role.SERVER)
    data = hdr(0, 0, 9, 4) + b"junk" + hdr(1, 8, 9, 0) + hdr(1, 0, 11, 5)
    assert core.receive_data(data) == []
    assert drain(core) == []


def test_wrong_parity_syn_gets_rst() -> None:
    core = SessionCore(Role.SERVER)
    assert core.receive_data(hdr(1, 1, 2, 0)) == []
    assert drain(core) == [hdr(1, 8, 2, 0)]


def test_local_go_away_rsts_new_syn() -> None:
    core = SessionCore(Role.SERVER)
    core.go_away()
    assert drain(core) == [hdr(3, 0, 0, 0)]
    core.receive_data(hdr(1, 1, 1, 0))
    assert drain(core) == [hdr(1, 8, 1, 0)]


def test_backlog_full_rsts_and_accept_frees_slot() -> None:
    core = SessionCore(Role.SERVER, accept_backlog=1)
    core.receive_data(hdr(1, 1, 1, 0) + hdr(1, 1, 3, 0))
    assert drain(core) == [hdr(1, 2, 1, 0), hdr(1, 8, 3, 0)]
    stream = core.get_stream(1)
    assert stream is not None
    core.accepted(stream)
    core.accepted(stream)
    assert core.receive_data(hdr(1, 1, 5, 0)) == [StreamOpened(5)]
    assert core.receive_data(hdr(1, 1, 7, 0)) == []
    core.receive_data(hdr(1, 8, 5, 0))
    assert core.receive_data(hdr(1, 1, 9, 0)) == [StreamOpened(9)]


def test_remote_rst() -> None:
    core = SessionCore(Role.CLIENT)
    stream = core.open_stream()
    stream.write(b"queued")
    assert core.receive_data(hdr(1, 8, 1, 0)) == [StreamReset(1)]
    assert stream.state is StreamState.RESET
    assert drain(core) == [hdr(1, 1, 1, 0)]
    with pytest.raises(YamuxError) as info:
        stream.read(1)
    assert info.value.reason is Reason.STREAM_RESET
    assert core.unacked_streams == 0


@pytest.mark.parametrize(
    "frames",
    [
        hdr(1, 1, 1, 0) + hdr(1, 1, 1, 0),
        hdr(0, 0, 0, 1) + b"x",
        hdr(1, 0, 0, 0),
        hdr(1, 1, 1, 0)
        + hdr(0, 0, 1, WINDOW)
        + b"\0" * WINDOW
        + hdr(0, 0, 1, 1)
        + b"x",
        hdr(1, 1, 1, 0) + hdr(1, 4, 1, 0) + hdr(0, 0, 1, 1) + b"x",
        bytes([1]) + hdr(0, 0, 0, 0)[1:],
        hdr(4, 0, 0, 0),
        hdr(0, 1, 1, WINDOW + 1),
    ],
)
def test_protocol_errors_send_go_away_1(frames: bytes) -> None:
    core = SessionCore(Role.SERVER)
    with pytest.raises(YamuxError) as info:
        core.receive_data(frames)
    assert info.value.reason is Reason.PROTOCOL_ERROR
    assert drain(core)[-1] == hdr(3, 0, 0, 1)
    assert core.closed
    with pytest.raises(YamuxError):
        core.open_stream()


def test_remote_go_away_codes() -> None:
    core = SessionCore(Role.CLIENT)
    core.receive_data(hdr(3, 0, 0, 0))
    with pytest.raises(YamuxError) as info:
        core.open_stream()
    assert info.value.reason is Reason.REMOTE_GO_AWAY
    fatal = SessionCore(Role.CLIENT)
    stream = fatal.open_stream()
    with pytest.raises(YamuxError) as info:
        fatal.receive_data(hdr(3, 0, 0, 2))
    assert info.value.reason is Reason.GO_AWAY
    assert drain(fatal) == [hdr(1, 1, 1, 0)]
    with pytest.raises(YamuxError):
        stream.write(b"x")


def test_stream_ids_exhausted() -> None:
    core = SessionCore(Role.CLIENT)
    core._next_id = 2**32 - 1
    core.open_stream()
    with pytest.raises(YamuxError) as info:
        core.open_stream()
    assert info.value.reason is Reason.STREAMS_EXHAUSTED


def test_round_robin_between_streams() -> None:
    core = SessionCore(Role.CLIENT, max_frame_data=1000)
    a, b = core.open_stream(), core.open_stream()
    drain(core)
    a.write(b"a" * 3000)
    b.write(b"b" * 1000)
    ids = [struct.unpack(">I", frame[4:8])[0] for frame in drain(core)]
    assert ids == [1, 3, 1, 1]


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=8))
def test_decoder_any_bytes_any_split(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(1024)
    whole = FrameDecoder(1024)
    got: list[object] = []
    expected: list[object] = []
    try:
        whole.feed(data)
        while (frame := whole.next_frame()) is not None:
            expected.append(frame)
    except YamuxError as exc:
        assert exc.reason is Reason.PROTOCOL_ERROR
        expected.append("error")
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    try:
        for start, end in itertools.pairwise(points):
            decoder.feed(data[start:end])
            while (frame := decoder.next_frame()) is not None:
                got.append(frame)
    except YamuxError as exc:
        assert exc.reason is Reason.PROTOCOL_ERROR
        got.append("error")
    assert got == expected


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(FrameType)),
            st.integers(0, 0xFFFF),
            st.integers(0, 2**32 - 1),
            st.binary(max_size=64),
            st.integers(0, 2**32 - 1),
        ),
        max_size=10,
    )
)
def test_decoder_roundtrip(
    frames: list[tuple[FrameType, int, int, bytes, int]],
) -> None:
    decoder = FrameDecoder()
    wire = b""
    for type_, flags, sid, body, length in frames:
        if type_ is FrameType.DATA:
            wire += hdr(type_, flags, sid, len(body)) + body
        else:
            wire += hdr(type_, flags, sid, length)
    decoder.feed(wire)
    for type_, flags, sid, body, length in frames:
        frame = decoder.next_frame()
        assert frame is not None
        assert (frame.type, int(frame.flags), frame.stream_id) == (type_, flags, sid)
        if type_ is FrameType.DATA:
            assert frame.body == body
        else:
            assert frame.length == length
    assert decoder.next_frame() is None


@given(st.binary(max_size=400))
def test_session_core_any_bytes_only_yamux_error(data: bytes) -> None:
    core = SessionCore(Role.SERVER)
    try:
        core.receive_data(data)
    except YamuxError:
        assert core.closed
    drain(core)


def test_flags_carry_window_credit_and_data_before_ack() -> None:
    core = SessionCore(Role.CLIENT, max_frame_data=WINDOW)
    stream = core.open_stream()
    drain(core)
    assert core.receive_data(hdr(0, 0, 1, 2) + b"hi") == [DataReceived(1)]
    assert stream.state is StreamState.SYN_SENT
    assert stream.read(2) == b"hi"
    stream.write(b"\1" * (WINDOW + 1000))
    assert len(drain(core)) == 1
    assert stream.send_window == 0
    core.receive_data(hdr(1, 2, 1, 1000))
    assert stream.state is StreamState.ESTABLISHED
    assert drain(core) == [hdr(0, 0, 1, 1000) + b"\1" * 1000]


def test_syn_data_fin_in_one_frame_and_rst_on_data() -> None:
    core = SessionCore(Role.SERVER)
    events = core.receive_data(hdr(0, 1 | 4, 1, 3) + b"abc")
    assert events == [StreamOpened(1), DataReceived(1), StreamEnded(1)]
    stream = core.get_stream(1)
    assert stream is not None
    assert stream.state is StreamState.REMOTE_CLOSE
    assert stream.read(10) == b"abc"
    assert stream.at_eof
    core.receive_data(hdr(1, 1, 3, 0))
    assert core.receive_data(hdr(0, 8, 3, 0)) == [StreamReset(3)]
    assert core.get_stream(3) is None
