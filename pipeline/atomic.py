"""Atomic file writes: a temporary file in the target's directory, then ``os.replace``.

An interrupted or failed write never leaves a half-written file, and an
earlier good file at the same path survives byte for byte. Files get the
usual ``0666 & ~umask`` permissions (``mkstemp`` alone would make them 0600,
unreadable by the app build or the device push that consumes them).

Example:
  >>> from pipeline import atomic
  >>> atomic.write_text("/tmp/report.json", "{}\\n")
  >>> with atomic.path("/tmp/model.keras") as tmp:
  ...     model.save(tmp)
"""
from __future__ import annotations

import contextlib
import os
import tempfile


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def path(final: str | os.PathLike):
    """Yields a temporary path beside ``final``; moves it into place if the block succeeds."""
    final = os.fspath(final)
    directory = os.path.dirname(os.path.abspath(final))
    os.makedirs(directory, exist_ok=True)
    base, suffix = os.path.splitext(os.path.basename(final))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        if os.path.isfile(tmp):
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        if os.path.isfile(tmp):
            os.remove(tmp)


def write_bytes(final: str | os.PathLike, data: bytes) -> str:
    """Writes ``data`` to ``final`` atomically (fsync'ed); returns the path."""
    with path(final) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return os.fspath(final)


def write_text(final: str | os.PathLike, text: str) -> str:
    """Writes ``text`` (UTF-8) to ``final`` atomically; returns the path."""
    return write_bytes(final, text.encode())
