"""Typed layer: dataclass messages per ``type_id`` (mux-rpc.md §5).

The wire envelope is unchanged; payloads are converted between JSON and
dataclasses with snake_case field names. Decoding follows the Go reference:
unknown keys are ignored, a missing or ``null`` field takes its default (or
the type's zero value), and a value of the wrong JSON type is an error.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from flowersec_endpoint.rpc.client import RpcClient
from flowersec_endpoint.rpc.errors import INVALID_PAYLOAD, RpcError
from flowersec_endpoint.rpc.server import Router

_log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Msg = TypeVar("Msg")


class PayloadError(ValueError):
    """A JSON payload that does not fit the message type."""


class Notifier(Protocol):
    """Anything that can send a notification (RpcClient, RpcServer)."""

    async def notify(self, type_id: int, payload: Any = None) -> None: ...


def to_payload(message: Any) -> Any:
    """Return the JSON value of a dataclass message (nested ones included).

    An ``Optional`` field holding ``None`` is left out, as the reference
    writers do (Go ``omitempty`` pointers, TS absent properties): the TS
    asserts accept an absent optional field but not a ``null`` one. A
    ``None`` in a field of any other type (``Any`` for IDL ``json``) stays
    ``null``.
    """
    if dataclasses.is_dataclass(message) and not isinstance(message, type):
        hints = typing.get_type_hints(type(message))
        obj: dict[str, Any] = {}
        for f in dataclasses.fields(message):
            value = getattr(message, f.name)
            if value is None and _is_optional(hints[f.name]):
                continue
            obj[f.name] = to_payload(value)
        return obj
    if isinstance(message, list | tuple):
        return [to_payload(item) for item in message]
    if isinstance(message, dict):
        return {key: to_payload(item) for key, item in message.items()}
    return message


def _is_optional(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(tp)
    )


def from_payload(cls: type[Msg], payload: Any) -> Msg:
    """Build ``cls`` (a dataclass) from a JSON value; ``None`` gives defaults."""
    return typing.cast(Msg, _convert(cls, payload, cls.__name__))


def _convert(tp: Any, value: Any, where: str) -> Any:
    if value is None:
        return _zero(tp, where)
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) != 1:
            raise TypeError(f"{where}: only Optional unions are supported")
        return _convert(options[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise PayloadError(f"{where}: expected an object")
        hints = typing.get_type_hints(tp)
        kwargs = {
            f.name: _convert(hints[f.name], value.get(f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(tp)
            if f.name in value and value[f.name] is not None
        }
        return typing.cast(Callable[..., Any], tp)(**kwargs)
    if origin is list:
        if not isinstance(value, list):
            raise PayloadError(f"{where}: expected an array")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{where}[]") for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise PayloadError(f"{where}: expected an object")
        _, item = typing.get_args(tp)
        return {k: _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(tp, value, where)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = type(value) is int
    elif tp is float:
        ok = type(value) in (int, float)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"{where}: unsupported field type {tp!r}")
    if not ok:
        raise PayloadError(f"{where}: expected {tp.__name__}")
    return value


def _zero(tp: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _convert(tp, {}, where)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType) or tp is Any:
        return None
    if origin is list:
        return []
    if origin is dict:
        return {}
    if tp in (bool, int, float, str):
        return tp()
    raise TypeError(f"{where}: unsupported field type {tp!r}")


async def call(
    client: RpcClient,
    type_id: int,
    request: Any,
    response_type: type[Resp],
    *,
    timeout: float | None = None,
) -> Resp:
    """Call ``type_id`` and decode the answer (``PayloadError`` if it does not fit)."""
    payload = await client.call(type_id, to_payload(request), timeout=timeout)
    return from_payload(response_type, payload)


async def notify(notifier: Notifier, type_id: int, message: Any) -> None:
    """Send a typed notification."""
    await notifier.notify(type_id, to_payload(message))


def on_notify(
    client: RpcClient,
    type_id: int,
    message_type: type[Msg],
    handler: Callable[[Msg], object],
) -> Callable[[], None]:
    """Subscribe with decoding; payloads that do not fit are dropped (logged)."""

    def deliver(payload: Any) -> object:
        try:
            message = from_payload(message_type, payload)
        except PayloadError as exc:
            _log.debug("typed notification dropped type_id=%d: %s", type_id, exc)
            return None
        return handler(message)

    return client.on_notify(type_id, deliver)


def register(
    router: Router,
    type_id: int,
    request_type: type[Req],
    response_type: type[Resp],
    handler: Callable[[Req], Awaitable[Resp | None]],
) -> None:
    """Route ``type_id`` to a typed handler.

    A request that does not decode is answered 400 "invalid payload"; a
    ``None`` result is sent as the response type's zero value.
    """

    async def raw(payload: Any) -> Any:
        try:
            request = from_payload(request_type, payload)
        except PayloadError as exc:
            raise RpcError(*INVALID_PAYLOAD) from exc
        response = await handler(request)
        if response is None:
            response = from_payload(response_type, None)
        return to_payload(response)

    router.register(type_id, raw)
