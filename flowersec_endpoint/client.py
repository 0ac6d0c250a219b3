"""The connected client returned by :mod:`flowersec_endpoint.connecting`."""

from __future__ import annotations

from flowersec_endpoint.e2ee.channel import SecureChannel
from flowersec_endpoint.errors import Path
from flowersec_endpoint.rpc import RpcClient
from flowersec_endpoint.session import Closer, Connection
from flowersec_endpoint.yamux.session import YamuxSession


class Client(Connection):
    """A connecting endpoint's connection with an RPC client on stream 1.

    ``rpc`` calls, notifies and subscribes to notifications (set
    ``rpc.observer`` to an :class:`~flowersec_endpoint.rpc.RpcObserver` for
    call metrics); extra streams come from :meth:`open_stream`. Use it as
    an async context manager or call :meth:`close`; :meth:`wait_closed`
    resolves when the connection dies, after which calls fail. ``secure``
    and ``mux`` expose the layers underneath for advanced use.
    """

    def __init__(
        self,
        *,
        path: Path,
        endpoint_instance_id: str | None,
        rpc: RpcClient,
        secure: SecureChannel,
        mux: YamuxSession,
        close_socket: Closer,
        keepalive_interval: float,
    ) -> None:
        super().__init__(
            path=path,
            endpoint_instance_id=endpoint_instance_id,
            secure=secure,
            mux=mux,
            close_socket=close_socket,
            keepalive_interval=keepalive_interval,
        )
        self.rpc = rpc
        self._on_close(self._close_rpc)

    async def _close_rpc(self) -> None:
        await self.rpc.close()
