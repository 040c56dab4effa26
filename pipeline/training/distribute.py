r"""Training under ``tf.distribute``: one process, all local devices, or many workers.

``config.distribute`` names a strategy in a registry:

* ``none``: no strategy (the default): models train where they are built;
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over every local device
  (all GPUs where present, else the CPU as one replica);
* ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` across the
  processes listed in the standard ``TF_CONFIG`` environment variable (one
  worker per process, each running the same command). Without ``TF_CONFIG``
  it is one worker.

Only training runs under the strategy: :func:`pipeline.training.fit.fit`
and the sparsity-aware fine-tune
(:func:`pipeline.export.sparse_finetune.finetune_sparse`) build a copy of
the model inside ``strategy.scope()`` (:meth:`Cluster.clone`), with the
chief's weights broadcast to every worker, compile and fit it there, and
copy the trained weights back into the plain model. Pruning, evaluation and
export stay single-process, so they never wait on the other workers.

Batching: ``train.batch_size`` is the *global* batch; Keras splits each batch
across the replicas (with several workers, every worker reads the same
seeded stream and keeps its share, ``AutoShardPolicy.DATA``). Learning rate:
the configured rate is the rate for that global batch and is not rescaled,
since the global batch does not change with the number of workers (the
optimisation is the same as one process's, only spread out). If you raise
``train.batch_size`` k-fold to keep every worker's share constant, raise
the learning rate k-fold too (the linear scaling rule, Goyal et al. 2017)
and keep or add a warm-up (``warmup_epochs``).

Only the chief writes artifacts (the run layer's
:mod:`pipeline.run.worker_store` gives the other workers a private store
that follows the chief's stamps). A non-chief worker's training logs go to
``workertemp_<id>`` inside the stage's folder (:meth:`Cluster.write_dir`)
and are deleted after ``fit``, as TensorFlow's multi-worker guide does.
``BackupAndRestore`` keeps its backup in the chief's ``<stage>/checkpoint``
folder, which every worker must be able to read (the same path on one host,
or shared storage): a worker restarted after a crash restores from it, so
training resumes from the last finished epoch.

The cluster is passed explicitly to what trains (``fit(..., cluster=)``,
the export stage's ``ExportContext.cluster``); there is no ambient one.

Example:
  >>> cluster = distribute.setup("multi_worker")   # first, before other TF ops
  >>> with cluster.peer_errors():
  ...     result = train.fit(model, datasets, train.Recipe(epochs=2), "/tmp/run/ft",
  ...                        cluster=cluster)
  >>> cluster.record()
  {'strategy': 'multi_worker', 'num_workers': 2, 'replicas': 2}
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from typing import Any, Callable

import tensorflow as tf

from pipeline import keras_api
from pipeline.errors import PruningError
from pipeline.registry import Registry

# What a collective op raises when a peer process died, was restarted or stopped answering.
_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.AbortedError)


class WorkerLostError(PruningError):
    """Another worker of the cluster died or became unreachable during training."""


_STRATEGIES: Registry[Callable[[], Any]] = Registry("distribution strategy")
_STRATEGIES.add("none", lambda: None)
_STRATEGIES.add("mirrored", tf.distribute.MirroredStrategy)
_STRATEGIES.add("multi_worker", tf.distribute.MultiWorkerMirroredStrategy)


def names() -> list[str]:
    """The valid values of ``config.distribute``."""
    return _STRATEGIES.names()


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The strategy of this process and its place in the cluster.

    Attributes:
      name: the ``config.distribute`` value.
      strategy: the ``tf.distribute.Strategy``, or None for ``none``.
      task_type: ``"chief"``, ``"worker"`` or None (no cluster).
      task_id: index of this task among its type.
      num_workers: processes taking part (chief included).
      has_chief_task: ``TF_CONFIG`` names a ``chief`` task (else worker 0 is the chief).
    """

    name: str = "none"
    strategy: Any = None
    task_type: str | None = None
    task_id: int = 0
    num_workers: int = 1
    has_chief_task: bool = False

    @property
    def is_chief(self) -> bool:
        """True for the one process that writes artifacts (TF's rule: a ``chief`` task,
        else worker 0, else a process without a cluster)."""
        if self.task_type in (None, "chief"):
            return True
        return self.task_type == "worker" and self.task_id == 0 and not self.has_chief_task

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy is not None else 1

    def record(self) -> dict:
        """What ``report.json`` records under ``distribute``."""
        return {"strategy": self.name, "num_workers": self.num_workers,
                "replicas": self.replicas}

    def scope(self):
        """``strategy.scope()``, or a no-op without a strategy."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def clone(self, model):
        """A copy of ``model`` built in the strategy's scope, holding the chief's weights."""
        with self.scope():
            copy = keras_api.copy_model(model)
        if self.num_workers > 1:
            _broadcast_from_chief(self.strategy, copy.weights, self.is_chief)
        return copy

    def replicate(self, model):
        """``model`` itself without a strategy, else :meth:`clone`."""
        return model if self.strategy is None else self.clone(model)

    def write_dir(self, directory: str) -> str:
        """Where this process writes logs for ``directory``: it, or a worker's temporary one."""
        if self.is_chief:
            return directory
        return os.path.join(directory, f"workertemp_{self.task_id}")

    def discard(self, directory: str) -> None:
        """Removes a non-chief worker's :meth:`write_dir` (the chief's is kept)."""
        if not self.is_chief:
            shutil.rmtree(directory, ignore_errors=True)

    @contextlib.contextmanager
    def peer_errors(self):
        """In the block, a collective op failing on a lost peer raises :class:`WorkerLostError`.

        Raises:
          WorkerLostError: a collective op failed because another worker died or
            stopped answering (several workers only); the message says how to resume.
        """
        try:
            yield self
        except _PEER_ERRORS as e:
            if self.num_workers < 2:
                raise
            raise WorkerLostError(
                f"{self.task_type} {self.task_id} of {self.num_workers} lost contact with "
                f"another worker ({type(e).__name__}); restart every stopped worker with the "
                "same command and TF_CONFIG: training resumes from the last epoch's backup"
            ) from e


def setup(name: str) -> Cluster:
    """Creates the strategy named ``name``; call it first, before other TensorFlow ops.

    ``MultiWorkerMirroredStrategy`` must be created before the program runs
    any other op (it configures the collective runtime), so the pipeline
    calls this right after checking the config.

    Raises:
      RegistryError: an unknown name; the message lists the valid ones.
    """
    strategy = _STRATEGIES.get(name)()
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec:
        return Cluster(name, strategy)
    workers = sum(len(spec.get(kind, ())) for kind in ("chief", "worker"))
    return Cluster(name, strategy, resolver.task_type, int(resolver.task_id or 0), workers,
                   "chief" in spec)


def _broadcast_from_chief(strategy, variables, is_chief: bool) -> None:
    """Gives every worker the chief's values of ``variables`` (a sum where only the chief adds).

    Every worker starts from the same weights even if their inputs differ in
    the last bits, and the collective doubles as a barrier: the chief has
    prepared its checkpoint folder before any worker restores from it.
    """
    weight = 1.0 if is_chief else 0.0
    tensors = [tf.convert_to_tensor(v) for v in variables]  # Keras 3 dtypes are strings
    values = [t if t.dtype.is_floating else tf.cast(t, tf.float64) for t in tensors]

    @tf.function
    def chief_values():  # one batched all-reduce; eager collectives are slow
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, [v * weight for v in values])

    summed = strategy.experimental_local_results(strategy.run(chief_values))[0]
    for variable, value, tensor in zip(variables, summed, tensors):
        variable.assign(tf.cast(value, tensor.dtype))
