"""Strict JSON reading: every malformed input becomes a DecodeError."""

from __future__ import annotations

import pytest

from flowersec_endpoint.encoding import DecodeError, loads_object


@pytest.mark.parametrize(
    "text",
    [
        '{"a":' + "9" * 5000 + "}",
        '{"a":-' + "1" * 4301 + "}",
        "[" * 100_000,
        '{"a":NaN}',
        b'{"a":"\xff"}',
    ],
)
def test_malformed_json_is_decode_error(text: str | bytes) -> None:
    with pytest.raises(DecodeError):
        loads_object(text)


def test_constant_message_kept() -> None:
    with pytest.raises(DecodeError, match="invalid JSON constant Infinity"):
        loads_object('{"a":Infinity}')
