"""The workdir of each process of a cluster: the chief writes it, the other workers follow it.

Only the chief writes artifacts. A non-chief worker's :class:`WorkerStore`
writes into its own temporary directory (:func:`private_dir`, removed at
the end by :func:`finish` or at exit) and reads the chief's stamps, so every
worker skips the same stages; it joins the export stage's sparse fine-tunes
but converts nothing, and skips the sensitivity scan, the evaluation and
the report (see :mod:`pipeline.training.distribute` for the training side).

Example:
  >>> cluster = distribute.setup(config.distribute)
  >>> store = worker_store.open_store(cluster, "/tmp/run")  # a Store on the chief
  >>> ...
  >>> worker_store.finish(cluster, store)
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile

from pipeline.run.store import Store
from pipeline.training.distribute import Cluster


def open_store(cluster: Cluster, workdir: str, restart: bool = False) -> Store:
    """The chief's :class:`Store`, or a :class:`WorkerStore` reading the chief's stamps."""
    if cluster.is_chief:
        return Store(workdir, restart)
    private = private_dir(cluster, workdir)
    # Also on an error exit (a SIGKILLed worker's is reused when it restarts).
    atexit.register(shutil.rmtree, private, True)
    return WorkerStore(workdir, private, restart)


def private_dir(cluster: Cluster, workdir: str) -> str:
    """The workdir this process writes into: ``workdir`` for the chief, else a temp dir."""
    if cluster.is_chief:
        return workdir
    path = os.path.abspath(workdir)
    tag = hashlib.sha256(path.encode()).hexdigest()[:8]  # same dir after a restart
    return os.path.join(tempfile.gettempdir(), f"prune-{os.path.basename(path)}-{tag}-"
                        f"{cluster.task_type}{cluster.task_id}")


def finish(cluster: Cluster, store: Store) -> None:
    """Removes a non-chief worker's private directory (the chief's workdir stays)."""
    if not cluster.is_chief:
        shutil.rmtree(store.workdir, ignore_errors=True)


class WorkerStore(Store):
    """A non-chief worker's store: writes in a private directory, follows the chief's stamps.

    :meth:`fresh` answers from the chief's workdir (and copies a fresh
    artifact in, for the stage to load), so every worker skips exactly the
    stages the chief skips and runs the same collective training steps.
    :meth:`scratch` returns the chief's checkpoint folder, where
    ``BackupAndRestore`` reads the chief's backup and writes this worker's
    own into ``workertemp_<id>``; only the chief empties it.

    Args:
      chief_workdir: the workdir every worker was given (the chief's).
      private: this worker's own directory (created; :func:`finish` removes it).
      restart: as for :class:`Store`.
    """

    def __init__(self, chief_workdir: str, private: str, restart: bool = False):
        super().__init__(private, restart)
        self.chief = Store(chief_workdir, restart)

    def fresh(self, name: str, key: str) -> dict | None:
        chief = self.chief
        record = chief.fresh(name, key)
        if record is None:
            return None
        source = chief.path(name)
        if os.path.isfile(source):
            with self.atomic(name) as tmp:
                shutil.copyfile(source, tmp)
        elif os.path.isdir(source):
            shutil.copytree(source, self.path(name), dirs_exist_ok=True)
        return record

    def scratch(self, name: str, key: str) -> str:
        del key  # the chief checks it and empties the folder for a new config
        return self.chief.path(name)
