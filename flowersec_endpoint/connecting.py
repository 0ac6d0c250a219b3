"""The connecting endpoint: grant or direct info in, ready client out.

Each flow follows the Go reference's step order (api.md §2.1, §3) so a
given bad input yields the same ``path/stage/code`` as the Go client;
:func:`connect` adds the auto-detection of api.md §1.4. Cancelling the
awaiting task cancels the connect (``CancelledError`` propagates, as asyncio
expects, instead of becoming a ``canceled`` error).
"""

from __future__ import annotations

from typing import Unpack

from flowersec_endpoint.attach import ROLE_CLIENT, attach_message
from flowersec_endpoint.client import Client
from flowersec_endpoint.dial import Dialed, dial, send_attach
from flowersec_endpoint.e2ee.channel import SecureChannel
from flowersec_endpoint.errors import Code, Path
from flowersec_endpoint.grants import ChannelInitGrant, DirectConnectInfo
from flowersec_endpoint.inputs import (
    ConnectInput,
    check_suite,
    decode_psk,
    detect,
    endpoint_instance_id,
    fail,
)
from flowersec_endpoint.options import (
    ClientOptionArgs,
    Options,
    build_options,
    resolve_origin,
    tunnel_keepalive,
)
from flowersec_endpoint.stack import (
    client_handshake,
    open_rpc_client,
    start_mux,
)


async def connect_tunnel(
    grant: ChannelInitGrant | None,
    *,
    origin: str | None = None,
    **options: Unpack[ClientOptionArgs],
) -> Client:
    """Attach to the tunnel as role client and return a ready client.

    Steps and failure codes follow api.md §2.1 in order. A rejected attach
    surfaces as ``tunnel/attach/<reason>`` (e.g. ``token_replay``).
    """
    path = Path.TUNNEL
    if grant is None:
        raise fail(path, Code.MISSING_GRANT, "no grant given")
    if grant.role != ROLE_CLIENT:
        raise fail(path, Code.ROLE_MISMATCH, "grant is not for role client")
    if not grant.tunnel_url:
        raise fail(path, Code.MISSING_TUNNEL_URL, "grant has no tunnel_url")
    if not grant.channel_id:
        raise fail(path, Code.MISSING_CHANNEL_ID, "grant has no channel_id")
    if not grant.token:
        raise fail(path, Code.MISSING_TOKEN, "grant has no token")
    if grant.channel_init_expire_at_unix_s <= 0:
        raise fail(path, Code.MISSING_INIT_EXP, "grant has no init expiry")
    opts = build_options(path, options)
    resolved_origin = resolve_origin(path, origin, opts.headers)
    keepalive = tunnel_keepalive(opts.keepalive_interval, grant.idle_timeout_seconds)
    psk = decode_psk(path, grant.e2ee_psk_b64u)
    suite = check_suite(path, grant.default_suite)
    eid = endpoint_instance_id(path, opts.endpoint_instance_id)

    dialed = await dial(path, grant.tunnel_url, resolved_origin, opts)
    try:
        message = attach_message(
            channel_id=grant.channel_id,
            role=ROLE_CLIENT,
            token=grant.token,
            endpoint_instance_id=eid,
        )
        await send_attach(dialed, message, path, opts)
        secure = await client_handshake(
            path,
            dialed.ws,
            channel_id=grant.channel_id,
            psk=psk,
            suite=suite,
            options=opts,
        )
    except BaseException:
        await dialed.close()
        raise
    return await _finish(path, dialed, secure, keepalive, eid, opts)


async def connect_direct(
    info: DirectConnectInfo | None,
    *,
    origin: str | None = None,
    **options: Unpack[ClientOptionArgs],
) -> Client:
    """Connect straight to a serving endpoint's WebSocket (api.md §3).

    No attach is sent; keepalive stays off unless ``keepalive_interval`` is
    given; supplying an ``endpoint_instance_id`` is ``invalid_option``.
    """
    path = Path.DIRECT
    if info is None:
        raise fail(path, Code.MISSING_CONNECT_INFO, "no connect info given")
    if not info.ws_url:
        raise fail(path, Code.MISSING_WS_URL, "connect info has no ws_url")
    if not info.channel_id:
        raise fail(path, Code.MISSING_CHANNEL_ID, "connect info has no channel_id")
    if info.channel_init_expire_at_unix_s <= 0:
        raise fail(path, Code.MISSING_INIT_EXP, "connect info has no init expiry")
    opts = build_options(path, options)
    resolved_origin = resolve_origin(path, origin, opts.headers)
    if opts.endpoint_instance_id is not None:
        raise fail(
            path,
            Code.INVALID_OPTION,
            "endpoint_instance_id applies to the tunnel path only",
        )
    psk = decode_psk(path, info.e2ee_psk_b64u)
    suite = check_suite(path, info.default_suite)
    keepalive = opts.keepalive_interval or 0.0

    dialed = await dial(path, info.ws_url, resolved_origin, opts)
    try:
        secure = await client_handshake(
            path,
            dialed.ws,
            channel_id=info.channel_id,
            psk=psk,
            suite=suite,
            options=opts,
        )
    except BaseException:
        await dialed.close()
        raise
    return await _finish(path, dialed, secure, keepalive, None, opts)


async def _finish(
    path: Path,
    dialed: Dialed,
    secure: SecureChannel,
    keepalive: float,
    eid: str | None,
    opts: Options,
) -> Client:
    """Steps 13-16: Yamux client, RPC stream with its hello, keepalive."""
    try:
        mux = start_mux(path, secure, client=True)
        try:
            rpc = await open_rpc_client(path, mux, opts.observer)
        except BaseException:
            await mux.close()
            raise
    except BaseException:
        await secure.close()
        await dialed.close()
        raise
    return Client(
        path=path,
        endpoint_instance_id=eid,
        rpc=rpc,
        secure=secure,
        mux=mux,
        close_socket=dialed.close,
        keepalive_interval=keepalive,
    )


async def connect(
    input: ConnectInput | None,
    *,
    origin: str | None = None,
    **options: Unpack[ClientOptionArgs],
) -> Client:
    """Connect from a grant, direct info, or their JSON (api.md §1.4).

    JSON with ``ws_url`` goes direct; a grant, ``{"grant_client": …}`` or a
    pair file goes through the tunnel; a lone ``{"grant_server": …}`` is
    tried as a tunnel client so that it fails with a clear
    ``role_mismatch``. Anything else is ``auto/validate/invalid_input``.
    """
    target = detect(input)
    if isinstance(target, DirectConnectInfo):
        return await connect_direct(target, origin=origin, **options)
    return await connect_tunnel(target, origin=origin, **options)
