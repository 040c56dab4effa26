"""The workdir: atomic artifact writes and the stamps that let a rerun skip stages.

Every file is written to a temporary name in its own directory and moved
into place with ``os.replace``, so an interrupted run never leaves a
half-written model beside a good one. A stage that finished writes a stamp
``<artifact>.stamp.json`` after its artifact, holding the hash of everything
the artifact depends on (the config sections it read and its inputs'
hashes) and a small record of what it measured. A rerun skips the stage when
the artifact exists and the stamp's hash matches.

:meth:`Store.cached` is that check-compute-save-stamp in one call; a stage's
record is a dataclass, stamped as its ``dataclasses.asdict``.

Example:
  >>> store = Store("/tmp/run")
  >>> key = fingerprint("plan", {"ratio": 0.5}, upstream_key)
  >>> made = store.cached("plan.json", key, lambda: (plan, Removed(0.5)), Removed,
  ...                     save=lambda name, plan: store.write_text(name, plan.to_json()))
  >>> made.reused  # True on a rerun with the same key: nothing was computed
  False
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, Callable, Generic, TypeVar

from pipeline import atomic
from pipeline.errors import PruningError
from pipeline.run import model_file

T = TypeVar("T")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Cached(Generic[T, R]):
    """What :meth:`Store.cached` returns.

    Attributes:
      value: what ``compute`` made, or what ``load`` read back (None without ``load``).
      record: the stage's record (a dataclass), computed or read from the stamp.
      reused: True when the stamp matched and nothing was computed.
    """

    value: T
    record: R
    reused: bool


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

    def cached(self, name: str, key: str, compute: Callable[[], tuple[T, R]],
               record_type: type[R], *, save: Callable[[str, T], Any] | None = None,
               load: Callable[[str], T] | None = None, needs: tuple[str, ...] = ()
               ) -> Cached[T, R]:
        """Artifact ``name`` made from ``key``: read back if stamped so, else computed and stamped.

        Args:
          name: the artifact, relative to the workdir (its stamp is ``<name>.stamp.json``).
          key: the hash of everything the artifact depends on.
          compute: makes ``(value, record)``; called only when the artifact is not fresh.
          record_type: the record's dataclass, rebuilt from a fresh stamp. A stamp whose
            record does not fit it (written by another version) counts as not fresh.
          save: ``save(name, value)`` writes the artifact (None: ``compute`` wrote it).
          load: ``load(name)`` reads a fresh artifact back (None: the value is None).
          needs: other artifacts written with ``name`` that must exist for it to count.

        Returns:
          A :class:`Cached`; ``reused`` tells whether ``compute`` was skipped.
        """
        record = self._fresh_record(name, key, record_type, needs)
        if record is not None:
            return Cached(load(name) if load else None, record, True)
        value, record = compute()
        if save is not None:
            save(name, value)
        self.stamp(name, key, dataclasses.asdict(record))
        return Cached(value, record, False)

    def _fresh_record(self, name: str, key: str, record_type: type[R], needs: tuple[str, ...]):
        stamped = self.fresh(name, key)
        if stamped is None or not all(os.path.exists(self.path(n)) for n in needs):
            return None
        names = {f.name for f in dataclasses.fields(record_type)}
        try:  # a stamp's extra keys are dropped; a missing required one makes it stale
            return record_type(**{k: v for k, v in stamped.items() if k in names})
        except TypeError:
            return None

    def stamp(self, name: str, key: str, record: dict | None = None) -> None:
        """Marks ``name`` as made from ``key``, with what the stage measured."""
        self.write_json(name + ".stamp.json", {"key": key, "record": record or {}})

    def write_json(self, name: str, body) -> str:
        """Writes ``body`` as indented JSON with sorted keys, atomically; returns its path."""
        return self.write_text(name, json.dumps(body, indent=1, sort_keys=True) + "\n")

    def read_json(self, name: str):
        """The JSON content of artifact ``name``."""
        with open(self.path(name)) as f:
            return json.load(f)

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

    def load_model(self, name: str):
        """Loads the Keras model saved as artifact ``name``.

        Raises:
          ModelFileError: the file is missing, empty, foreign or damaged.
        """
        return model_file.load(self.path(name))

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


class MemberStore(Store):
    """The sub-folder of one member of a family run, as a store of its own.

    Every name is resolved under ``folder`` of ``parent`` through the
    parent's own methods, so a member of a non-chief worker's store follows
    the chief's stamps like the parent does
    (:class:`pipeline.run.worker_store.WorkerStore`). Names whose first
    component is in ``shared`` resolve to the parent's (a latency table
    measured for one ratio serves the others).

    Args:
      parent: the run's store.
      folder: the member's sub-folder, relative to the parent's workdir.
      shared: top-level names the member reads and writes in the parent.

    Example:
      >>> member = MemberStore(store, "ratio_0.50", shared=("latency_tables",))
      >>> member.path("plan.json")  # <workdir>/ratio_0.50/plan.json
    """

    def __init__(self, parent: Store, folder: str, shared: tuple[str, ...] = ()):
        super().__init__(parent.path(folder), parent.restart)
        self.parent, self.folder, self.shared = parent, folder, tuple(shared)

    def _name(self, name: str) -> str:
        return name if name.split("/")[0] in self.shared else f"{self.folder}/{name}"

    def path(self, name: str) -> str:
        return self.parent.path(self._name(name))

    def fresh(self, name: str, key: str) -> dict | None:
        return self.parent.fresh(self._name(name), key)

    def scratch(self, name: str, key: str) -> str:
        return self.parent.scratch(self._name(name), key)
