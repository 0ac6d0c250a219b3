"""Exceptions raised by the sans-I/O E2EE core.

The core does not know which connection path it runs on, so it raises
:class:`E2EEError` with a stage and a stable code; the asyncio layer turns it
into a :class:`~flowersec_endpoint.errors.FlowersecError` with the path.
"""

from __future__ import annotations

from enum import StrEnum

from flowersec_endpoint.errors import Code, FlowersecError, Path, Stage


class E2EEError(Exception):
    """A handshake, configuration or record failure with its stable code."""

    def __init__(self, stage: Stage, code: Code, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.code = code
        self.message = message


class RecordFailure(StrEnum):
    """Why a secure channel ended; stable strings for logs and tests."""

    RECORD_TOO_LARGE = "record_too_large"
    INVALID_LENGTH = "invalid_length"
    INVALID_MAGIC = "invalid_magic"
    BAD_VERSION = "bad_version"
    BAD_FLAG = "bad_flag"
    BAD_SEQ = "bad_seq"
    DECRYPT_FAILED = "decrypt_failed"
    SEQ_EXHAUSTED = "seq_exhausted"
    TRANSPORT_CLOSED = "transport_closed"
    TEXT_MESSAGE = "text_message"
    CLOSED = "closed"


class RecordError(E2EEError):
    """A fatal record-layer failure; the channel cannot be used afterwards.

    No code of api.md §9.2 names record failures (the reference just ends the
    session), so these carry ``secure``/``not_connected`` and the precise
    cause in :attr:`reason`.
    """

    def __init__(self, reason: RecordFailure, message: str = "") -> None:
        super().__init__(Stage.SECURE, Code.NOT_CONNECTED, message or str(reason))
        self.reason = reason


def handshake_failed(message: str) -> E2EEError:
    """Build the catch-all handshake error of e2ee.md §14."""
    return E2EEError(Stage.HANDSHAKE, Code.HANDSHAKE_FAILED, message)


class SecureChannelError(FlowersecError):
    """A secure channel ended by a failure; :attr:`reason` says which one."""

    def __init__(
        self,
        path: Path,
        code: Code,
        reason: RecordFailure,
        message: str = "",
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(path, Stage.SECURE, code, message or str(reason), cause)
        self.reason = reason
