"""The sans-I/O channel hub, rate limiter and replay store."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowersec_tunnel.attach import AttachRejected, Reject
from flowersec_tunnel.channels import (
    Admission,
    ChannelEnded,
    ChannelState,
    End,
    Endpoint,
    Hub,
    Limits,
    RateLimiter,
    ReplacePolicy,
    looks_like_record,
)
from flowersec_tunnel.replay import MemoryReplayStore, used_until


def ep(role: int) -> Endpoint:
    return Endpoint(role, "id", f"tok-{role}")


def test_create_join_pair_flush_and_route() -> None:
    hub = Hub(Limits())
    server = ep(2)
    assert hub.admit(server, "c", 100, 60, 1.0).kind is Admission.CREATED
    assert hub.route(server, b"early", 1.5) is None
    client = ep(1)
    admitted = hub.admit(client, "c", 100, 60, 2.0)
    assert admitted.kind is Admission.PAIRED
    assert admitted.pair_latency == 1.0
    assert hub.route(server, b"during flush", 2.1) is None
    assert hub.take_pending(admitted.channel, server) == [b"early", b"during flush"]
    assert hub.take_pending(admitted.channel, server) == []
    assert admitted.channel.state is ChannelState.PAIRED
    assert hub.route(server, b"direct", 2.2) is client
    assert hub.total_pending == 0


def test_end_closes_both_once() -> None:
    hub = Hub(Limits())
    a, b = ep(1), ep(2)
    hub.admit(a, "c", 1, 1, 0)
    hub.admit(b, "c", 1, 1, 0)
    assert hub.end(a, End.PEER_CLOSED) == (a, b)
    assert hub.end(b, End.PEER_CLOSED) == ()
    assert b.end_reason is End.PEER_CLOSED
    assert not hub.channels


def test_overflow_and_global_cap() -> None:
    hub = Hub(Limits(max_pending_bytes=10, max_total_pending_bytes=15))
    a, b = ep(2), ep(2)
    hub.admit(a, "a", 1, 1, 0)
    hub.admit(b, "b", 1, 1, 0)
    hub.route(a, b"x" * 10, 0)
    with pytest.raises(ChannelEnded) as exc:
        hub.route(a, b"x", 0)
    assert exc.value.reason is End.PENDING_OVERFLOW
    with pytest.raises(ChannelEnded):
        hub.route(b, b"y" * 6, 0)
    hub.end(a, End.PENDING_OVERFLOW)
    assert hub.total_pending == 0


def test_mismatches_and_channel_limit() -> None:
    hub = Hub(Limits(max_channels=1))
    hub.admit(ep(1), "c", 10, 60, 0)
    for init_exp, idle in ((11, 60), (10, 61)):
        with pytest.raises(AttachRejected) as exc:
            hub.admit(ep(2), "c", init_exp, idle, 0)
        assert exc.value.reason is Reject.ATTACH_FAILED
    with pytest.raises(AttachRejected):
        hub.admit(ep(1), "other", 10, 60, 0)


def test_replacement_keeps_limiter_and_params_of_first() -> None:
    hub = Hub(Limits(replace=ReplacePolicy(window=10, max_per_window=2)))
    first, peer = ep(1), ep(2)
    hub.admit(first, "c", 10, 60, 0)
    hub.admit(peer, "c", 10, 60, 0)
    second = ep(1)
    admitted = hub.admit(second, "c", 10, 60, 1)
    assert admitted.kind is Admission.REPLACED
    assert set(admitted.evicted) == {first, peer}
    assert first.end_reason is End.REPLACED
    hub.admit(ep(1), "c", 10, 60, 2)
    with pytest.raises(AttachRejected) as exc:
        hub.admit(ep(1), "c", 10, 60, 3)
    assert exc.value.reason is Reject.REPLACE_RATE_LIMITED
    hub.admit(ep(1), "c", 10, 60, 11.5)


def test_rate_limiter_cooldown_and_disabled() -> None:
    limiter = RateLimiter()
    policy = ReplacePolicy(cooldown=1.0, window=0, max_per_window=0)
    assert limiter.allow(0.0, policy)
    assert not limiter.allow(0.5, policy)
    assert limiter.allow(1.0, policy)
    off = ReplacePolicy(cooldown=0, window=0, max_per_window=5)
    assert all(RateLimiter().allow(0.0, off) for _ in range(100))


def test_due_order_and_thresholds() -> None:
    hub = Hub(Limits())
    a = ep(1)
    hub.admit(a, "init", 100, 5, 0.0)
    b = ep(1)
    hub.admit(b, "idle", 10**9, 5, 0.0)
    assert hub.due(5.0, 130, 30, 10) == []
    due = dict((ch.channel_id, why) for ch, why in hub.due(5.1, 131, 30, 10))
    assert due == {"init": End.INIT_EXPIRED, "idle": End.IDLE_TIMEOUT}
    b.write_since = 1.0
    due = dict((ch.channel_id, why) for ch, why in hub.due(5.1, 0, 30, 2))
    assert due["idle"] is End.WRITE_ERROR


def test_replay_store() -> None:
    store = MemoryReplayStore()
    assert not store.check_and_mark("", 10, 0)
    assert store.check_and_mark("t", 10, 0)
    assert not store.check_and_mark("t", 10, 10)
    assert store.purge(10) == 0
    assert store.purge(11) == 1
    assert store.check_and_mark("t", 20, 11)
    assert used_until(2**63 - 1, 30) == 2**63 - 1


def record(payload: bytes, declared: int | None = None, version: int = 1) -> bytes:
    size = len(payload) if declared is None else declared
    header = b"FSEC" + bytes([version, 0]) + bytes(8) + size.to_bytes(4, "big")
    return header + payload


@given(st.binary(max_size=64))
def test_record_sniffing(payload: bytes) -> None:
    assert looks_like_record(record(payload))
    assert not looks_like_record(record(payload, len(payload) + 1))
    assert not looks_like_record(record(payload, version=2))
    assert not looks_like_record(b"FSEH" + record(payload)[4:])
    assert not looks_like_record(record(payload)[:17])


def test_stale_endpoint_messages_end_only_that_endpoint() -> None:
    """§6.4 step 3: gone channel -> unknown_channel; replaced -> missing_src."""
    hub = Hub(Limits())
    old, peer = ep(1), ep(2)
    hub.admit(old, "c", 1, 1, 0)
    hub.admit(peer, "c", 1, 1, 0)
    newcomer = ep(1)
    assert hub.admit(newcomer, "c", 1, 1, 0).kind is Admission.REPLACED
    with pytest.raises(ChannelEnded) as exc:
        hub.route(old, b"late", 1)
    assert exc.value.reason is End.MISSING_SRC
    assert hub.end(old, exc.value.reason) == ()
    assert hub.channels["c"].slots[1] is newcomer
    hub.end(newcomer, End.PEER_CLOSED)
    with pytest.raises(ChannelEnded) as exc:
        hub.route(newcomer, b"late", 2)
    assert exc.value.reason is End.UNKNOWN_CHANNEL
    assert not hub.channels
