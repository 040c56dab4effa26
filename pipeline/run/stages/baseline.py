"""The baseline stage: loads ``model.path`` or trains ``model.name``; saves ``baseline.keras``."""
from __future__ import annotations

import os
import time


import models
from pipeline import keras_api
from pipeline.errors import PruningError
from pipeline.fingerprint import fingerprint
from pipeline.run import model_file
from pipeline.run.results import ModelRecord, ModelResult
from pipeline.run.stages.data import Data
from pipeline.run.stages.measure import measure
from pipeline.run.store import Store
from pipeline.training import fit as train
from pipeline.training.distribute import Cluster

NAME = "baseline.keras"


def baseline(model_section, train_section, data: Data, store: Store, *, seed: int,
             deterministic: bool = False, cluster: Cluster | None = None,
             loaded=None) -> ModelResult:
    """The model to prune: ``model.path`` loaded, or ``model.name`` built and trained.

    The model file's input and classes were checked against the data by
    :func:`pipeline.run.preflight.check_model` before any stage ran.

    Args:
      model_section: ``config.model``.
      train_section: ``config.train`` (the :class:`pipeline.training.fit.Recipe`).
      data: the data stage's output.
      store: the workdir.
      seed: seeds the model's initial weights and training.
      deterministic: ``config.deterministic`` (part of the key: it changes the trained weights).
      cluster: what training runs under (None: this process alone).
      loaded: ``model.path`` as the preflight loaded it (None: loaded here if needed).

    Returns:
      The :class:`ModelResult` of ``baseline.keras``.

    Raises:
      PruningError: ``model.path`` vanished since the preflight.
    """
    key = fingerprint("baseline", data.key, model_section, train_section,
                      _file_identity(model_section.path), deterministic)

    def compute():
        keras_api.set_random_seed(seed)
        start = time.time()
        if model_section.path:
            # ModelFileError: missing, damaged...
            model = loaded if loaded is not None else model_file.load(model_section.path)
            origin = {"source": os.path.abspath(model_section.path)}
        else:
            model, origin = _train(model_section, train_section, data,
                                   store.scratch("baseline", key), cluster)
        record = ModelRecord(**measure(model, data.datasets, model_section.output),
                             seconds=time.time() - start, **origin)
        return model, record

    made = store.cached(NAME, key, compute, ModelRecord, save=store.save_model,
                        load=store.load_model)
    if made.reused:
        print(f"[baseline] up to date: {NAME} (test accuracy {made.record.accuracy:.4f})")
    else:
        print(f"[baseline] test accuracy {made.record.accuracy:.4f} "
              f"({made.record.seconds:.0f} s)")
    return ModelResult(made.value, NAME, key, made.record)


def _train(model_section, train_section, data: Data, directory: str, cluster):
    """Builds ``model.name`` and trains it; the model and its record's origin fields."""
    datasets = data.datasets
    model = models.build(model_section.name, datasets.input_shape, datasets.num_classes,
                         width=model_section.width, dropout=model_section.dropout,
                         keras=model_section.keras)
    print(f"[baseline] training {model_section.name} for {train_section.epochs} epochs "
          f"on {datasets.sizes['train']} images")
    fitted = train.fit(model, datasets, train.Recipe.from_config(train_section), directory,
                       cluster=cluster)
    return model, {"source": f"trained:{model_section.name}", "history": fitted.history,
                   "epochs": fitted.epochs, "bn_batches": fitted.bn_batches}


def _file_identity(path: str):
    """Path, size and mtime of ``model.path``, so a replaced file retriggers the stage."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError as e:
        raise PruningError(f"config.model.path={path!r} does not exist; point it at a .keras, "
                           ".h5 or SavedModel folder, or set it to '' to train model.name") from e
    return [os.path.abspath(path), st.st_size, int(st.st_mtime)]
