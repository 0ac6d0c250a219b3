"""What every attempt in one worker process shares, and its event loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp

from flowersec_endpoint.loadgen.config import LoadConfig
from flowersec_endpoint.loadgen.minting import Minter


@dataclass
class Runtime:
    """Configuration, HTTP session and grant minter of one worker process."""

    config: LoadConfig
    http: aiohttp.ClientSession
    minter: Minter

    def channel_id(self, index: int) -> str:
        """The channel of attempt ``index`` (``chan_load_<index>``)."""
        return f"{self.config.channel_prefix}{index}"


def run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to completion on uvloop (the default loop on Windows)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if sys.platform == "win32":
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
