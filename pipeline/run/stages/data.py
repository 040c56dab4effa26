"""The data stage: the train, validation and test pipelines, and the key they hash to."""
from __future__ import annotations

import dataclasses

from pipeline.data import datasets as data_sets
from pipeline.data import preprocess as preprocessing
from pipeline.fingerprint import fingerprint


@dataclasses.dataclass(frozen=True)
class Data:
    """The data stage's output.

    Attributes:
      datasets: the :class:`pipeline.data.datasets.Datasets`.
      key: hash of everything they depend on; every stage that reads them hashes it.
    """

    datasets: data_sets.Datasets
    key: str


def load_data(section, *, input_size: int, channels: int, batch_size: int, seed: int,
              preprocess: str = "unit", mean=(), std=()) -> Data:
    """Loads ``config.data`` at the model's input size and channels, preprocessed.

    Args:
      section: the ``config.data`` section (``memory_mb``: image files decoded into
        memory up to this many MiB, else streamed).
      input_size: side of the model input (``model.input_size``, 0 = the data's own).
      channels: channels of the model input (``model.channels``, 0 = the data's own).
      batch_size: examples per training batch (``train.batch_size``).
      seed: fixes subsets, the validation split, shuffling and augmentation.
      preprocess: ``model.preprocess``, a name of
        :func:`pipeline.data.preprocess.preprocess_names`.
      mean: ``model.mean`` (``preprocess="mean_std"`` only), 0-255 pixel units.
      std: ``model.std`` (``preprocess="mean_std"`` only), 0-255 pixel units.

    Returns:
      The :class:`Data`.

    Raises:
      DataError: missing or unreadable files, or options out of range.
      PreprocessError: a malformed preprocessing, or one that does not fit the input.
      RegistryError: an unknown ``data.name`` or ``model.preprocess``.
    """
    prep = preprocessing.from_settings(preprocess, mean, std)
    datasets = data_sets.make_datasets(
        section.name, data_dir=section.dir, batch_size=batch_size, val_split=section.val_split,
        subset=section.subset, test_subset=section.test_subset, image_size=input_size,
        channels=channels, flip=section.flip, shift=section.shift, seed=seed, preprocess=prep,
        memory_bytes=int(section.memory_mb) << 20)
    # Hashed only when it is not the default, so [0, 1] runs keep their keys (and caches).
    extra = () if prep.is_unit else (prep,)
    # Where the pixels wait (data.memory_mb) changes no batch: it stays out of the key.
    hashed = {k: v for k, v in section.to_dict().items() if k != "memory_mb"}
    return Data(datasets, fingerprint("data", hashed, input_size, channels, batch_size, seed,
                                      *extra))
