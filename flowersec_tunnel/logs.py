"""structlog set-up for the daemon: JSON lines on stderr, or a console view.

One configuration for the whole process so that every event carries the
same keys (``event``, ``level``, ``timestamp``) whatever module logs it.
Callers pass only safe identifiers (``channel_id``, ``token_id``, role,
reasons, counts); tokens, attach JSON and keys are never handed to a logger.

Records of the standard ``logging`` module (aiohttp, asyncio) go through
the same renderer, so stderr stays one event per line. A request that a
client got wrong (malformed HTTP, a connection dropped mid-request) is
logged by aiohttp with a traceback at ERROR level; here it becomes one
``info`` line naming the exception class, so a remote peer cannot flood
the log with tracebacks or have its request bytes echoed into it.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog
from aiohttp.http_exceptions import HttpProcessingError

LogFormat = Literal["json", "console"]

_CLIENT_FAULTS = (HttpProcessingError, ConnectionError)


class _StderrHandler(logging.Handler):
    """Write formatted records to whatever ``sys.stderr`` is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _quiet_client_faults(record: logging.LogRecord) -> bool:
    """Turn a client-caused failure into one traceback-free info record."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, _CLIENT_FAULTS):
        record.msg = f"{record.getMessage()}: {type(exc).__name__}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno = logging.INFO
        record.levelname = "INFO"
    return True


def _stdlib_handler(renderer: structlog.typing.Processor) -> logging.Handler:
    handler = _StderrHandler()
    handler.addFilter(_quiet_client_faults)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    return handler


def configure(fmt: LogFormat = "json", *, level: int = logging.INFO) -> None:
    """Send structlog events and stdlib records to stderr, one per line."""
    renderer: structlog.typing.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(_stdlib_handler(renderer))
    root.setLevel(max(level, logging.WARNING))


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to ``component=<name>``.

    It stays lazy: it follows :func:`configure` even when called before it.
    """
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
