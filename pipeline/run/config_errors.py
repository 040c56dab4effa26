"""Library errors in the command line's spelling: Python arguments become ``--config.`` keys.

The library speaks Python: a :class:`~pipeline.errors.PruningError` names the
function argument to change (``pass data_dir=<folder>``) and carries its name
in ``error.argument``. Only the run layer knows which config key feeds which
argument (see :mod:`pipeline.run.stages`), so the translation lives here:
:data:`ARGUMENT_KEYS` maps an argument to its key, and :func:`spelled`
rewrites the message for a command-line user.

An argument that two config keys feed, depending on the stage (``ratios``:
``sensitivity.ratios`` or a per-group override; ``epochs``: ``train.epochs``
or ``finetune.epochs``), is left out on purpose: a message naming it keeps
its Python spelling rather than pointing at the wrong key.

Example:
  >>> from pipeline.data import loaders
  >>> try:
  ...     loaders.load("fashion_mnist", "/tmp/empty")
  ... except loaders.DataError as e:
  ...     print(spelled(e))  # doctest: +ELLIPSIS
  Fashion-MNIST: --config.data.dir='/tmp/empty' lacks ...; pass --config.data.dir=<...>
"""
from __future__ import annotations

import re
import types
from typing import Mapping

from pipeline.errors import PruningError

ARGUMENT_KEYS: Mapping[str, str] = types.MappingProxyType({
    # pipeline.data: make_datasets and the loaders
    "data_dir": "data.dir",
    "val_split": "data.val_split",
    "subset": "data.subset",
    "test_subset": "data.test_subset",
    "flip": "data.flip",
    "shift": "data.shift",
    "image_size": "model.input_size",
    "channels": "model.channels",
    "batch_size": "train.batch_size",
    # pipeline.prune / plan_pruning and PruneConfig
    "ratio": "prune.ratio",
    "target": "prune.target",
    "criterion": "prune.criterion",
    "scope": "prune.scope",
    "round_to": "prune.round_to",
    "preprocess": "model.preprocess",
    "mean": "model.mean",
    "std": "model.std",
    "output": "model.output",
    "min_filters": "prune.min_filters",
    "ignore": "prune.ignore",
    "seed": "seed",
    "iterations": "finetune.iterations",
    # the latency target (LatencyConfig)
    "table": "prune.latency.table",
    "tolerance": "prune.latency.tolerance",
    "max_iterations": "prune.latency.max_iterations",
    "utility": "prune.latency.utility",
    # the sensitivity scan
    "max_batches": "sensitivity.max_batches",
})


def config_key(argument: str | None) -> str | None:
    """The config key that feeds the library argument ``argument``, or None if none does.

    Args:
      argument: a Python argument name, as in ``PruningError.argument``.

    Returns:
      The dotted key under ``config`` (``"data.dir"``), or None for an
      unknown or unset argument.
    """
    return ARGUMENT_KEYS.get(argument) if argument else None


def spelled(error: BaseException) -> str:
    """``error``'s message with its argument written as the ``--config.`` key that sets it.

    Every ``<argument>=`` in the message (``data_dir='/x'``,
    ``pass data_dir=<folder>``) becomes ``--config.<key>=``. The message is
    returned unchanged when the error names no argument or one that no config
    key feeds, and for exceptions that are not a ``PruningError``.

    Args:
      error: the exception the library raised.

    Returns:
      The message for a command-line user.

    Example:
      >>> spelled(PruningError("data_dir='' is empty; pass data_dir=<folder>",
      ...                      argument="data_dir"))
      "--config.data.dir='' is empty; pass --config.data.dir=<folder>"
    """
    message = str(error)
    argument = getattr(error, "argument", None) if isinstance(error, PruningError) else None
    key = config_key(argument)
    if key is None:
        return message
    # Only the whole name: not after a word character, dot or dash, so ``ratio=``
    # stays out of ``min_ratio=`` and an already spelled ``--config.x.ratio=`` is left be.
    pattern = re.compile(rf"(?<![\w.\-]){re.escape(argument)}=")
    return pattern.sub(lambda _: f"--config.{key}=", message)
