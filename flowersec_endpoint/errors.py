"""The one structured error of the high-level API (api.md §9).

Apps aggregate failures by ``path + stage + code``, so the three fields are
string enums whose values never change; the message and cause are free text.
"""

from __future__ import annotations

from enum import StrEnum


class Path(StrEnum):
    """Which connection path failed."""

    AUTO = "auto"
    TUNNEL = "tunnel"
    DIRECT = "direct"


class Stage(StrEnum):
    """Which step of the connection failed."""

    VALIDATE = "validate"
    CONNECT = "connect"
    ATTACH = "attach"
    HANDSHAKE = "handshake"
    SECURE = "secure"
    YAMUX = "yamux"
    RPC = "rpc"
    CLOSE = "close"


class Code(StrEnum):
    """Stable failure codes shared with the Go and TypeScript peers."""

    TIMEOUT = "timeout"
    CANCELED = "canceled"

    INVALID_INPUT = "invalid_input"
    INVALID_OPTION = "invalid_option"
    MISSING_GRANT = "missing_grant"
    MISSING_CONNECT_INFO = "missing_connect_info"
    MISSING_CONN = "missing_conn"
    ROLE_MISMATCH = "role_mismatch"
    MISSING_TUNNEL_URL = "missing_tunnel_url"
    MISSING_WS_URL = "missing_ws_url"
    MISSING_ORIGIN = "missing_origin"
    MISSING_CHANNEL_ID = "missing_channel_id"
    MISSING_TOKEN = "missing_token"
    MISSING_INIT_EXP = "missing_init_exp"
    INVALID_PSK = "invalid_psk"
    INVALID_SUITE = "invalid_suite"
    INVALID_VERSION = "invalid_version"
    INVALID_ENDPOINT_INSTANCE_ID = "invalid_endpoint_instance_id"
    RESOLVE_FAILED = "resolve_failed"
    RANDOM_FAILED = "random_failed"

    DIAL_FAILED = "dial_failed"
    UPGRADE_FAILED = "upgrade_failed"
    ATTACH_FAILED = "attach_failed"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    EXPECTED_ATTACH = "expected_attach"
    INVALID_ATTACH = "invalid_attach"
    INVALID_TOKEN = "invalid_token"
    CHANNEL_MISMATCH = "channel_mismatch"
    TOKEN_REPLAY = "token_replay"
    REPLACE_RATE_LIMITED = "replace_rate_limited"

    HANDSHAKE_FAILED = "handshake_failed"
    TIMESTAMP_OUT_OF_SKEW = "timestamp_out_of_skew"
    TIMESTAMP_AFTER_INIT_EXP = "timestamp_after_init_exp"
    AUTH_TAG_MISMATCH = "auth_tag_mismatch"

    PING_FAILED = "ping_failed"
    NOT_CONNECTED = "not_connected"
    MUX_FAILED = "mux_failed"
    ACCEPT_STREAM_FAILED = "accept_stream_failed"
    OPEN_STREAM_FAILED = "open_stream_failed"
    STREAM_HELLO_FAILED = "stream_hello_failed"
    MISSING_STREAM_KIND = "missing_stream_kind"
    MISSING_HANDLER = "missing_handler"


class FlowersecError(Exception):
    """A failure a caller can act on, classified as ``path stage (code)``.

    The text form matches the reference peers so mixed-language logs read
    the same; ``cause`` is also chained as ``__cause__`` by callers that use
    ``raise ... from``.
    """

    def __init__(
        self,
        path: Path,
        stage: Stage,
        code: Code,
        message: str = "",
        cause: BaseException | None = None,
    ) -> None:
        self.path = Path(path)
        self.stage = Stage(stage)
        self.code = Code(code)
        self.message = message
        self.cause = cause
        detail = message or (str(cause) if cause is not None else str(self.code))
        super().__init__(f"{self.path} {self.stage} ({self.code}): {detail}")
        if cause is not None:
            self.__cause__ = cause
