"""Order across the pending-to-paired hand-over (tunnel.md §6.4, §6.5).

The waiting side keeps sending while its buffer is flushed to the peer that
just arrived; every message must come out once, whole, and in order.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .conftest import Harness


async def test_messages_sent_during_the_flush_keep_their_order(tun: Harness) -> None:
    server = await tun.attach("chan-order", 2)
    messages = [i.to_bytes(4, "big") * (10 + i % 50) for i in range(300)]
    for data in messages[:50]:
        await server.send_bytes(data)
    hub = tun.server.runtime.hub
    await tun.wait_for(
        lambda: (
            "chan-order" in hub.channels
            and len(hub.channels["chan-order"].slots[2].pending) == 50
        )  # type: ignore[union-attr]
    )

    async def keep_sending() -> None:
        for data in messages[50:]:
            await server.send_bytes(data)

    sender = asyncio.create_task(keep_sending())
    client = await tun.attach("chan-order", 1)
    got = [await client.receive_bytes() for _ in messages]
    await sender
    assert got == messages
    assert hub.total_pending == 0
