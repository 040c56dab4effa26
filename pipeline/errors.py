"""Exception types raised by the pruning library.

Every error is a ``ValueError`` subclass so callers that only want "bad input"
can catch one type; each message names the layer, file or value and the fix.

Library code speaks Python: a message names the function argument to change
(``data_dir=...``), and the error carries that name in ``argument``. The run
layer, which knows which config key feeds which argument, rewrites the name
into its ``--config.`` spelling (:func:`pipeline.run.config_errors.spelled`);
no library module mentions a config key.
"""
from __future__ import annotations


class PruningError(ValueError):
    """Base class of every error this package raises on bad input.

    Args:
      message: what is wrong and the fix, naming the Python argument.
      argument: that argument's name (for example ``"data_dir"``), or None.
    """

    def __init__(self, message: str = "", *, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


class UnsupportedModelError(PruningError):
    """The model cannot be analysed (subclassed, unbuilt, shared layers...)."""


class UnsupportedLayerError(PruningError):
    """A layer class has no registered channel handler."""


class PlanError(PruningError):
    """A pruning plan does not fit the model it is applied to, or is malformed."""


class TargetError(PruningError):
    """A pruning target is out of range or cannot be reached under the constraints."""


class RegistryError(PruningError):
    """A registry lookup or registration failed (unknown or duplicate name)."""


class ModelFileError(PruningError):
    """``model.path`` is missing, empty, not a Keras model, truncated or corrupt."""


class WorkdirError(PruningError):
    """The workdir cannot be created or written, or the disk filled up while writing."""


class DiskFullError(WorkdirError):
    """The disk (or the process's file-size limit) ran out while writing an artifact."""
