"""structlog set-up for the daemon: JSON lines on stderr, or a console view.

One configuration for the whole process so that every event carries the
same keys (``event``, ``level``, ``timestamp``) whatever module logs it.
Callers pass only safe identifiers (``channel_id``, ``token_id``, role,
reasons, counts); tokens, attach JSON and keys are never handed to a logger.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["json", "console"]


def configure(fmt: LogFormat = "json", *, level: int = logging.INFO) -> None:
    """Send structlog events to stderr as JSON lines or console text."""
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


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to ``component=<name>``.

    It stays lazy: it follows :func:`configure` even when called before it.
    """
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
