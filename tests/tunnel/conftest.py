"""Shared fixtures: an in-process tunnel on 127.0.0.1 and raw WS clients."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from flowersec_endpoint.encoding import b64u_encode
from flowersec_tunnel.config import TunnelConfig
from flowersec_tunnel.keys import IssuerKey
from flowersec_tunnel.server import TunnelServer
from flowersec_tunnel.tokens import TokenPayload, sign_token

AUD = "flowersec-tunnel:test"
ISS = "issuer-test"
ORIGIN = "https://app.example.com"


def base_config(**overrides: Any) -> TunnelConfig:
    """Short timings so every timeout test stays well under a second."""
    cfg = TunnelConfig(
        aud=AUD,
        iss=ISS,
        allow_origin=(ORIGIN,),
        issuer_keys_file="unused",
        cleanup_interval=0.05,
        close_timeout=0.5,
        drain_timeout=2.0,
    )
    return replace(cfg, **overrides)


class Harness:
    """A running tunnel plus helpers to mint tokens and attach raw clients."""

    def __init__(
        self, server: TunnelServer, key: IssuerKey, session: aiohttp.ClientSession
    ) -> None:
        self.server = server
        self.key = key
        self.session = session
        self._init_exp: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://{self.server.listen}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.server.listen}{self.server.config.ws_path}"

    def token(
        self,
        channel_id: str,
        role: int,
        *,
        token_id: str | None = None,
        init_exp: int | None = None,
        idle: int = 60,
        iat: int | None = None,
        exp: int | None = None,
        aud: str = AUD,
        iss: str = ISS,
        key: IssuerKey | None = None,
    ) -> str:
        now = int(time.time())
        # One init window per channel, as a control plane mints it: a token
        # minted a second later must not carry another init_exp.
        default_init = self._init_exp.setdefault(channel_id, now + 120)
        init = default_init if init_exp is None else init_exp
        payload = TokenPayload(
            kid="",
            aud=aud,
            iss=iss,
            channel_id=channel_id,
            role=role,
            token_id=secrets.token_urlsafe(24) if token_id is None else token_id,
            init_exp=init,
            idle_timeout_seconds=idle,
            iat=now if iat is None else iat,
            exp=min(now + 60, init) if exp is None else exp,
        )
        return sign_token(payload, key or self.key)

    async def ws(
        self, *, origin: str | None = ORIGIN, **kwargs: Any
    ) -> aiohttp.ClientWebSocketResponse:
        headers = {} if origin is None else {"Origin": origin}
        return await self.session.ws_connect(
            self.ws_url, headers=headers, autoping=True, **kwargs
        )

    async def attach(
        self,
        channel_id: str,
        role: int,
        *,
        token: str | None = None,
        **token_args: Any,
    ) -> aiohttp.ClientWebSocketResponse:
        ws = await self.ws()
        await ws.send_str(
            attach_message(
                channel_id, role, token or self.token(channel_id, role, **token_args)
            )
        )
        return ws

    async def pair(
        self, channel_id: str | None = None, **token_args: Any
    ) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]:
        cid = channel_id or secrets.token_urlsafe(12)
        client = await self.attach(cid, 1, **token_args)
        server = await self.attach(cid, 2, **token_args)
        await wait_for(lambda: self.is_paired(cid))
        return client, server

    def is_paired(self, channel_id: str) -> bool:
        ch = self.server.runtime.hub.channels.get(channel_id)
        return ch is not None and ch.state.value == "paired"

    @staticmethod
    def attach_message(
        channel_id: str, role: int, token: str, instance: bytes | None = None
    ) -> str:
        return attach_message(channel_id, role, token, instance)

    @staticmethod
    async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        await wait_for(predicate, timeout)

    @staticmethod
    async def closed_with(
        ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0
    ) -> tuple[int | None, str]:
        return await closed_with(ws, timeout)


def attach_message(
    channel_id: str, role: int, token: str, instance: bytes | None = None
) -> str:
    return json.dumps(
        {
            "v": 1,
            "channel_id": channel_id,
            "role": role,
            "token": token,
            "endpoint_instance_id": b64u_encode(instance or os.urandom(24)),
        }
    )


async def wait_for(
    predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.01
) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


async def closed_with(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0
) -> tuple[int | None, str]:
    """Read until the close; return (code, reason); data messages are skipped."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return msg.data, msg.extra or ""
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return ws.close_code, ""


StartTunnel = Callable[..., Awaitable[Harness]]


@pytest.fixture
def issuer_key() -> IssuerKey:
    return IssuerKey.generate("k1")


@pytest.fixture
async def start_tunnel(issuer_key: IssuerKey) -> AsyncIterator[StartTunnel]:
    """Start in-process tunnels with config overrides; all stopped at the end."""
    servers: list[TunnelServer] = []
    session = aiohttp.ClientSession()

    async def start(**overrides: Any) -> Harness:
        server = TunnelServer(
            base_config(**overrides), {issuer_key.kid: issuer_key.public_key}
        )
        await server.start()
        servers.append(server)
        return Harness(server, issuer_key, session)

    yield start
    await session.close()
    for server in servers:
        await server.shutdown()


@pytest.fixture
async def tun(start_tunnel: StartTunnel) -> Harness:
    return await start_tunnel()
