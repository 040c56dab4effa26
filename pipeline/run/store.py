"""The workdir: atomic artifact writes and the stamps that let a rerun skip stages.

Every file is written to a temporary name in its own directory and moved
into place with ``os.replace``, so an interrupted run never leaves a
half-written model beside a good one. A stage that finished writes a stamp
``<artifact>.stamp.json`` after its artifact, holding the hash of everything
the artifact depends on (the config sections it read and its inputs'
hashes) and a small record of what it measured. A rerun skips the stage when
the artifact exists and the stamp's hash matches.

Example:
  >>> store = Store("/tmp/run")
  >>> key = fingerprint("plan", {"ratio": 0.5}, upstream_key)
  >>> record = store.fresh("plan.json", key)
  >>> if record is None:
  ...     store.write_text("plan.json", plan.to_json())
  ...     store.stamp("plan.json", key, {"removed": 0.5})
"""
from __future__ import annotations

import json
import os
import shutil

from pipeline import atomic
from pipeline.errors import PruningError


class Store:
    """Reads and writes the artifacts of one workdir.

    Args:
      workdir: the run's directory (created).
      restart: if True, :meth:`fresh` reports nothing as done, so every
        stage runs again and training ignores its old checkpoints.
    """

    def __init__(self, workdir: str, restart: bool = False):
        self.workdir = os.path.abspath(workdir)
        self.restart = restart
        try:
            os.makedirs(self.workdir, exist_ok=True)
        except OSError as e:
            raise PruningError(f"cannot create workdir {self.workdir}: {e}") from e

    def path(self, name: str) -> str:
        """Absolute path of artifact ``name`` (relative to the workdir)."""
        return os.path.join(self.workdir, name)

    def fresh(self, name: str, key: str) -> dict | None:
        """The record of ``name`` if it exists with stamp ``key``, else None."""
        if self.restart or not os.path.exists(self.path(name)):
            return None
        try:
            with open(self.path(name) + ".stamp.json") as f:
                stamp = json.load(f)
        except (OSError, ValueError):
            return None
        return stamp.get("record", {}) if stamp.get("key") == key else None

    def stamp(self, name: str, key: str, record: dict | None = None) -> None:
        """Marks ``name`` as made from ``key``, with what the stage measured."""
        self.write_text(name + ".stamp.json",
                        json.dumps({"key": key, "record": record or {}}, indent=1,
                                   sort_keys=True) + "\n")

    def write_text(self, name: str, text: str) -> str:
        return self.write_bytes(name, text.encode())

    def write_bytes(self, name: str, data: bytes) -> str:
        """Writes ``data`` to artifact ``name`` atomically; returns its path."""
        return atomic.write_bytes(self.path(name), data)

    def save_model(self, name: str, model) -> str:
        """Saves a Keras model (``.keras`` or ``.h5`` by the name's suffix) atomically."""
        with self.atomic(name) as tmp:
            model.save(tmp)
        return self.path(name)

    def atomic(self, name: str):
        """Yields a temporary path beside artifact ``name``; moves it into place on success."""
        return atomic.path(self.path(name))

    def scratch(self, name: str, key: str) -> str:
        """A directory for a stage's checkpoints and logs, emptied unless made for ``key``.

        A checkpoint left by a killed run is kept only if the config that made
        it is the current one (and not on restart), so resuming never mixes
        two configs.
        """
        directory = self.path(name)
        marker = os.path.join(directory, "KEY")
        try:
            with open(marker) as f:
                same = f.read().strip() == key
        except OSError:
            same = False
        if self.restart or not same:
            shutil.rmtree(directory, ignore_errors=True)
            os.makedirs(directory)
            with open(marker, "w") as f:
                f.write(key + "\n")
        return directory
