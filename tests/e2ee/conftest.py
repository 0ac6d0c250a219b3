"""Shared fixtures for the E2EE tests: vectors, scripted randomness, peers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
PSK = bytes(range(0x10, 0x30))


class ScriptedRandom:
    """Returns pre-set byte strings in order; fails loudly when misused."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = list(chunks)

    def __call__(self, n: int) -> bytes:
        chunk = self._chunks.pop(0)
        assert len(chunk) == n, f"asked for {n} bytes, scripted {len(chunk)}"
        return chunk


@pytest.fixture
def e2ee_vectors() -> dict[str, Any]:
    path = VECTORS / "e2ee_vectors.json"
    if not path.is_file():
        pytest.skip(f"official vectors not found at {path}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture
def scripted() -> Callable[[Iterable[bytes]], ScriptedRandom]:
    return ScriptedRandom


@pytest.fixture
def psk() -> bytes:
    return PSK
