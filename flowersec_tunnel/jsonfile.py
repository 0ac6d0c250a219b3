"""JSON text and file writing shared by the key files and the tool outputs.

Key files and tool outputs must come out with the reference's exact layout
(Go-escaped, compact or 2-space indented) and an exact file mode, and a file
that already exists must never be half-replaced, so the writing lives here
once.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from flowersec_endpoint.encoding import dumps_compact

_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


class RefuseOverwriteError(FileExistsError):
    """The target exists and overwriting was not allowed (CLIs exit 2)."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"refusing to overwrite existing file: {path} (use --overwrite)"
        )
        self.path = path


def dumps_json(obj: Mapping[str, Any], *, pretty: bool) -> bytes:
    """Serialise like Go's ``json.Marshal`` or ``MarshalIndent(v, "", "  ")``."""
    if not pretty:
        return dumps_compact(dict(obj))
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


def write_file(
    path: str | os.PathLike[str], data: bytes, *, mode: int, overwrite: bool
) -> None:
    """Write ``data`` to ``path`` with exactly ``mode``, atomically.

    The bytes go to a temporary file in the same directory first; it is then
    renamed over the target (``overwrite``) or hard-linked to it, which fails
    if the target appeared meanwhile. Readers never see a partial file.
    """
    target = os.fspath(path)
    if not overwrite and os.path.lexists(target):
        raise RefuseOverwriteError(target)
    directory = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise RefuseOverwriteError(target) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
