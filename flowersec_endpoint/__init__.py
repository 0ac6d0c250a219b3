"""Flowersec endpoint library: E2EE, Yamux and RPC over WebSocket."""

from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage

__all__ = ["Code", "FlowersecError", "Path", "Stage"]
