"""A minimal control plane: it owns the issuer key and mints grant pairs.

Run it first; it writes the tunnel's keyset and prints the tunnel command:

    python examples/controlplane.py --listen 127.0.0.1:8090 \
        --tunnel-url ws://127.0.0.1:8080/ws --keyset /tmp/fsec-keyset.json

HTTP API (JSON):
  POST /v1/channel/init   mint a pair; the server grant is queued for the
                          serving endpoint; answers {"grant_client": {...}}
  GET  /v1/endpoint/grant the serving endpoint's long poll (30 s); answers
                          {"grant_server": {...}} or 204 when none came

A real control plane authenticates both callers; this one trusts loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import urlsplit

from aiohttp import web

from flowersec_tunnel.issuer import mint_grant_pair, random_id
from flowersec_tunnel.keys import IssuerKey, write_keyset

AUD = "flowersec-tunnel:example"
ISS = "issuer-example"
LONG_POLL = 30.0


def make_app(key: IssuerKey, tunnel_url: str) -> web.Application:
    """The two routes, sharing one queue of server grants."""
    server_grants: asyncio.Queue[dict[str, object]] = asyncio.Queue(maxsize=64)

    async def channel_init(request: web.Request) -> web.Response:
        pair = mint_grant_pair(
            key, tunnel_url=tunnel_url, audience=AUD, issuer=ISS, channel_id=random_id()
        )
        try:
            server_grants.put_nowait(pair.server.to_obj())
        except asyncio.QueueFull:
            return web.json_response({"error": "no endpoint is picking up"}, status=503)
        return web.json_response({"grant_client": pair.client.to_obj()})

    async def endpoint_grant(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(LONG_POLL):
                grant = await server_grants.get()
        except TimeoutError:
            return web.Response(status=204)
        return web.json_response({"grant_server": grant})

    app = web.Application()
    app.router.add_post("/v1/channel/init", channel_init)
    app.router.add_get("/v1/endpoint/grant", endpoint_grant)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8090")
    parser.add_argument("--tunnel-url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--keyset", default="fsec-keyset.json")
    args = parser.parse_args()
    key = IssuerKey.generate("k1")
    write_keyset(args.keyset, {key.kid: key.public_key}, overwrite=True)
    host, _, port = args.listen.rpartition(":")
    tunnel = urlsplit(args.tunnel_url)
    print(
        json.dumps(
            {
                "controlplane": f"http://{args.listen}",
                "tunnel_command": (
                    f"flowersec-tunnel --listen {tunnel.netloc} "
                    f"--issuer-keys-file {args.keyset} --aud {AUD} --iss {ISS} "
                    "--allow-origin http://127.0.0.1"
                ),
            }
        ),
        flush=True,
    )
    web.run_app(make_app(key, args.tunnel_url), host=host, port=int(port), print=None)


if __name__ == "__main__":
    main()
