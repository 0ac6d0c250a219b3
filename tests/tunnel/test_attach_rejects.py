"""Every attach rejection of tunnel.md §8.1 with its exact code and reason."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from flowersec_tunnel.keys import IssuerKey

if TYPE_CHECKING:
    from .conftest import Harness, StartTunnel


def attach_obj(tun: Harness, **overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(tun.attach_message("chan-x", 1, "t"))
    obj["token"] = tun.token("chan-x", 1)
    obj.update(overrides)
    return obj


async def test_too_many_connections(start_tunnel: StartTunnel) -> None:
    tun = await start_tunnel(max_conns=1)
    first = await tun.ws()
    second = await tun.ws()
    assert await tun.closed_with(second) == (1013, "too_many_connections")
    await first.close()


async def test_binary_first_message_is_expected_attach(tun: Harness) -> None:
    ws = await tun.ws()
    await ws.send_bytes(b"\x00")
    assert await tun.closed_with(ws) == (1002, "expected_attach")


async def test_no_attach_in_time_is_expected_attach(
    start_tunnel: StartTunnel,
) -> None:
    tun = await start_tunnel(attach_timeout=0.2)
    ws = await tun.ws()
    assert await tun.closed_with(ws) == (1002, "expected_attach")


async def test_oversize_attach_gets_1009_without_reason(tun: Harness) -> None:
    ws = await tun.ws()
    await ws.send_str("x" * 8193)
    assert await tun.closed_with(ws) == (1009, "")


async def test_attach_of_exactly_8192_bytes_is_parsed(tun: Harness) -> None:
    ws = await tun.ws()
    text = json.dumps(attach_obj(tun, pad=""))
    text = text[:-1] + " " * (8192 - len(text)) + "}"
    assert len(text) == 8192
    await ws.send_str(text)
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.2)
    await ws.close()


async def test_peer_close_before_attach_is_echoed(tun: Harness) -> None:
    ws = await tun.ws()
    await ws.close(code=4001)
    assert ws.close_code == 4001


@pytest.mark.parametrize(
    "overrides",
    [
        {"v": 2},
        {"v": "1"},
        {"v": True},
        {"channel_id": ""},
        {"channel_id": "c" * 257},
        {"channel_id": 5},
        {"role": 3},
        {"role": 0},
        {"role": 1.0},
        {"token": ""},
        {"token": "t" * 2049},
        {"endpoint_instance_id": ""},
        {"endpoint_instance_id": "A" * 21},
        {"endpoint_instance_id": "A" * 44},
        {"endpoint_instance_id": "A" * 22 + "="},
        {"caps": {"a": 1}},
        {"caps": []},
    ],
)
async def test_invalid_attach(tun: Harness, overrides: dict[str, Any]) -> None:
    ws = await tun.ws()
    await ws.send_str(json.dumps(attach_obj(tun, **overrides)))
    assert await tun.closed_with(ws) == (1002, "invalid_attach")


@pytest.mark.parametrize(
    "text", [b"", b"null", b"[]", b"{", b'{"v":1} x', b"\xff", b'{"v":NaN}']
)
async def test_invalid_attach_json(tun: Harness, text: bytes) -> None:
    ws = await tun.ws()
    await ws._writer.send_frame(text, aiohttp.WSMsgType.TEXT)
    code, reason = await tun.closed_with(ws)
    assert (code, reason) in ((1002, "invalid_attach"), (1007, ""))


async def test_caps_object_of_strings_is_fine(tun: Harness) -> None:
    ws = await tun.ws()
    await ws.send_str(json.dumps(attach_obj(tun, caps={"a": "b", "n": None})))
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.2)
    await ws.close()


def _bad_tokens(tun: Harness) -> list[str]:
    now = int(time.time())
    other = IssuerKey.generate("k1")
    good = tun.token("chan-x", 1)
    return [
        "FST2.abc",
        good.replace("FST2", "fst2", 1),
        good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        tun.token("chan-x", 1, key=other),
        tun.token("chan-x", 1, key=IssuerKey.generate("unknown")),
        tun.token("chan-x", 1, aud="other"),
        tun.token("chan-x", 1, iss="other"),
        tun.token("chan-x", 1, iat=now + 100),
        tun.token("chan-x", 1, iat=now - 300, exp=now - 100),
        tun.token("chan-x", 1, init_exp=now - 100, exp=now - 100),
    ]


async def test_invalid_token(tun: Harness) -> None:
    for token in _bad_tokens(tun):
        ws = await tun.ws()
        await ws.send_str(tun.attach_message("chan-x", 1, token))
        assert await tun.closed_with(ws) == (1008, "invalid_token"), token


async def test_channel_and_role_mismatch(tun: Harness) -> None:
    ws = await tun.ws()
    await ws.send_str(tun.attach_message("chan-y", 1, tun.token("chan-x", 1)))
    assert await tun.closed_with(ws) == (1008, "channel_mismatch")
    ws = await tun.ws()
    await ws.send_str(tun.attach_message("chan-x", 2, tun.token("chan-x", 1)))
    assert await tun.closed_with(ws) == (1008, "role_mismatch")


async def test_token_replay_and_mismatch_does_not_burn(tun: Harness) -> None:
    token = tun.token("chan-r", 1)
    ws = await tun.ws()
    await ws.send_str(tun.attach_message("chan-other", 1, token))
    assert await tun.closed_with(ws) == (1008, "channel_mismatch")
    first = await tun.attach("chan-r", 1, token=token)
    second = await tun.ws()
    await second.send_str(tun.attach_message("chan-r", 1, token))
    assert await tun.closed_with(second) == (1008, "token_replay")
    assert not first.closed
    await first.close()


async def test_empty_token_id_is_token_replay(tun: Harness) -> None:
    ws = await tun.attach("chan-e", 1, token_id="")
    assert await tun.closed_with(ws) == (1008, "token_replay")


async def test_replace_rate_limited_after_five(tun: Harness) -> None:
    holders = [await tun.attach("chan-rl", 2)]
    for _ in range(5):
        holders.append(await tun.attach("chan-rl", 2))
        assert await tun.closed_with(holders[-2]) == (1001, "replaced")
    refused = await tun.attach("chan-rl", 2)
    assert await tun.closed_with(refused) == (1013, "replace_rate_limited")
    assert not holders[-1].closed
    await holders[-1].close()


async def test_attach_failed_on_mismatched_parameters(tun: Harness) -> None:
    now = int(time.time())
    waiting = await tun.attach("chan-p", 1, init_exp=now + 100)
    ws = await tun.attach("chan-p", 2, init_exp=now + 101)
    assert await tun.closed_with(ws) == (1011, "attach_failed")
    ws = await tun.attach("chan-p", 2, init_exp=now + 100, idle=61)
    assert await tun.closed_with(ws) == (1011, "attach_failed")
    assert not waiting.closed
    await waiting.close()


async def test_attach_failed_when_channels_are_full(
    start_tunnel: StartTunnel,
) -> None:
    tun = await start_tunnel(max_channels=1)
    first = await tun.attach("chan-1", 1)
    second = await tun.attach("chan-2", 1)
    assert await tun.closed_with(second) == (1011, "attach_failed")
    await first.close()
