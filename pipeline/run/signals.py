"""Turns the ways a run can be stopped from outside into errors that say what to do.

* A full disk or a file-size limit (``ENOSPC``, ``EDQUOT``, ``EFBIG``, and
  TensorFlow's checkpoint writer reporting the same) becomes a
  :class:`DiskFullError`. The process-wide part, ignoring ``SIGXFSZ`` so that
  an over-limit write fails with ``EFBIG`` instead of killing the process
  with a core dump, is in :func:`signals` (the command line's).
* ``SIGTERM`` raises :class:`Interrupted` (a ``KeyboardInterrupt``, like
  Ctrl-C's), so ``fit`` stops between steps, the atomic writes in flight
  remove their temporary files and the last epoch's checkpoint stays for the
  next run to resume from.

Example:
  >>> with guard.signals(), guard.disk_errors():
  ...     run_pipeline(config, "/tmp/run")
"""
from __future__ import annotations

import contextlib
import errno
import signal

import tensorflow as tf

from pipeline.errors import DiskFullError

_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_TEXT = ("No space left on device", "File too large", "Disk quota exceeded")


class Interrupted(KeyboardInterrupt):
    """The run got ``SIGTERM`` (or ``SIGINT``); ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def is_disk_full(error: BaseException) -> bool:
    """True if ``error`` (or an error it was raised from) means the disk or file limit is full."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in _DISK_ERRNOS:
            return True
        if isinstance(error, (OSError, tf.errors.OpError, RuntimeError)) and any(
                text in str(error) for text in _DISK_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def disk_errors():
    """Re-raises a full-disk failure inside the block as :class:`DiskFullError`.

    Also a decorator: ``@guard.disk_errors()``.
    """
    try:
        yield
    except Exception as e:  # h5py, zipfile and TensorFlow each wrap ENOSPC their own way
        if not is_disk_full(e):
            raise
        where = _filename(e)
        raise DiskFullError(
            f"the disk is full (or a file-size limit was hit) while writing "
            f"{where or 'an artifact'}: {' '.join(str(e).split())[:160]}; free space on the "
            "workdir's disk and rerun the same command (finished stages are kept)") from e


def _filename(error: BaseException) -> str:
    while error is not None:
        if isinstance(error, OSError) and error.filename:
            return str(error.filename)
        error = error.__cause__ or error.__context__
    return ""


@contextlib.contextmanager
def signals():
    """Within the block, ``SIGTERM`` raises :class:`Interrupted` and ``SIGXFSZ`` is ignored.

    Only the main thread may install handlers; elsewhere this does nothing.
    """
    def interrupt(signum, frame):
        del frame
        raise Interrupted(signum)

    try:
        old = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt),
               signal.SIGXFSZ: signal.signal(signal.SIGXFSZ, signal.SIG_IGN)}
    except ValueError:  # not the main thread
        old = {}
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)


def exit_status(error: BaseException) -> int:
    """The shell's status for a run stopped by ``error``: 128 + signal for an interrupt, else 1.

    A run that finishes takes its status from its report instead:
    :func:`pipeline.run.report.exit_status` (0, or 3 when a requested variant, or a ratio
    of a family run, failed).
    """
    if isinstance(error, Interrupted):
        return 128 + int(error.signum)
    if isinstance(error, KeyboardInterrupt):
        return 128 + int(signal.SIGINT)
    return 1
