"""Every stderr line of the daemon is one JSON event, stdlib records too."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from flowersec_tunnel.logs import configure

if TYPE_CHECKING:
    from .conftest import Harness


@pytest.fixture
def json_stderr() -> Iterator[None]:
    """Configure JSON logs; afterwards drop the root handler it installed."""
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    configure("json")
    yield
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


def events(err: str) -> list[dict[str, object]]:
    lines = err.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) for e in parsed)
    return parsed


def log_request_error(exc: BaseException) -> None:
    """Log the way aiohttp's server does for a request it failed to handle."""
    try:
        raise exc
    except BaseException as raised:
        logging.getLogger("aiohttp.server").exception(
            "Error handling request from %s", "127.0.0.1", exc_info=raised
        )


@pytest.mark.usefixtures("json_stderr")
@pytest.mark.parametrize(
    "exc",
    [
        BadHttpMessage("Invalid header value char: b'Origin: \\x01 secret'"),
        LineTooLong("Got more than 32768 bytes when reading: b'aaaa'"),
        ConnectionResetError("Cannot write to closing transport"),
    ],
)
def test_client_faults_are_one_quiet_line(
    exc: BaseException, capsys: pytest.CaptureFixture[str]
) -> None:
    log_request_error(exc)
    (event,) = events(capsys.readouterr().err)
    assert event["level"] == "info"
    assert event["logger"] == "aiohttp.server"
    assert event["event"] == (
        f"Error handling request from 127.0.0.1: {type(exc).__name__}"
    )
    assert "exception" not in event
    assert "secret" not in json.dumps(event)


@pytest.mark.usefixtures("json_stderr")
def test_other_stdlib_errors_keep_their_traceback_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log_request_error(RuntimeError("handler bug"))
    logging.getLogger("asyncio").warning("socket.send() raised exception.")
    logging.getLogger("aiohttp.access").info("not shown below WARNING")
    first, second = events(capsys.readouterr().err)
    assert first["level"] == "error"
    assert "RuntimeError: handler bug" in str(first["exception"])
    assert second == {
        "event": "socket.send() raised exception.",
        "logger": "asyncio",
        "level": "warning",
        "timestamp": second["timestamp"],
    }


@pytest.mark.usefixtures("json_stderr")
async def test_unretrieved_task_error_is_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def boom() -> None:
        raise ValueError("lost")

    loop = asyncio.get_running_loop()
    task = loop.create_task(boom())
    await asyncio.sleep(0)
    loop.call_exception_handler(
        {"message": "Task exception was never retrieved", "exception": task.exception()}
    )
    (event,) = events(capsys.readouterr().err)
    assert event["logger"] == "asyncio"
    assert "ValueError: lost" in str(event["exception"])


def test_configure_twice_keeps_one_handler() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure("json")
        configure("console")
        assert len(root.handlers) == len(before) + 1
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)


@pytest.mark.usefixtures("json_stderr")
async def test_malformed_requests_to_a_live_tunnel_log_one_line_each(
    tun: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = tun.server.listen.rsplit(":", 1)
    capsys.readouterr()
    too_long = b"GET /ws HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    bad_char = b"GET /ws HTTP/1.1\r\nOrigin: \x01\r\n\r\n"
    for request in (too_long, bad_char):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        assert (await reader.read()).startswith(b"HTTP/1.0 400")
        writer.close()
    err = capsys.readouterr().err
    server_events = [e for e in events(err) if e.get("logger") == "aiohttp.server"]
    assert len(server_events) == 2
    assert {e["level"] for e in server_events} == {"info"}
    assert "Traceback" not in err
