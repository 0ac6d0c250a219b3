"""A connecting client: asks the control plane for a grant, then talks.

    python examples/client.py --controlplane http://127.0.0.1:8090 --name Ada

``connect`` accepts the control plane's reply as is ({"grant_client": …}).
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp

from flowersec_endpoint.connecting import connect

ORIGIN = "http://127.0.0.1"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controlplane", default="http://127.0.0.1:8090")
    parser.add_argument("--name", default="world")
    args = parser.parse_args()
    url = f"{args.controlplane}/v1/channel/init"
    async with aiohttp.ClientSession() as http, http.post(url) as reply:
        reply.raise_for_status()
        grant_json = await reply.read()

    async with await connect(grant_json, origin=ORIGIN) as client:
        print("rpc:", await client.rpc.call(1, {"name": args.name}, timeout=5))
        stream = await client.open_stream("upper")
        stream.write(b"shout this")
        await stream.drain()
        await stream.close()
        print("stream:", (await stream.readexactly(10)).decode())


if __name__ == "__main__":
    asyncio.run(main())
