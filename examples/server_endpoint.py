"""A serving endpoint: takes server grants from the control plane, serves each.

    python examples/server_endpoint.py --controlplane http://127.0.0.1:8090

It offers RPC type 1 ("greet": {"name": …} → {"greeting": …}) and a stream
kind "upper" that sends back what it reads in upper case. Every grant is
served in its own task; a grant is single-use, so each client connection
needs a fresh one (the client example asks the control plane for it).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp

from flowersec_endpoint.errors import FlowersecError
from flowersec_endpoint.grants import decode_grant_server_json
from flowersec_endpoint.rpc import Router, RpcServer
from flowersec_endpoint.serve import Server, serve_tunnel
from flowersec_endpoint.stack import Stream

ORIGIN = "http://127.0.0.1"


def register(router: Router, rpc: RpcServer) -> None:
    """Called for every RPC stream; ``rpc`` can also send notifications."""

    async def greet(payload: Any) -> Any:
        return {"greeting": f"hello, {payload.get('name', 'stranger')}"}

    router.register(1, greet)


async def upper(stream: Stream) -> None:
    async for chunk in stream:
        stream.write(chunk.upper())
        await stream.drain()


async def serve_one(grant_json: bytes, server: Server) -> None:
    try:
        await serve_tunnel(decode_grant_server_json(grant_json), server, origin=ORIGIN)
    except FlowersecError as exc:
        print(f"session failed: {exc}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controlplane", default="http://127.0.0.1:8090")
    args = parser.parse_args()
    server = Server(rpc_register=register)
    server.handle("upper", upper)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{args.controlplane}/v1/endpoint/grant") as reply:
                if reply.status == 204:
                    continue
                reply.raise_for_status()
                body = await reply.read()
            task = asyncio.create_task(serve_one(body, server))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    asyncio.run(main())
