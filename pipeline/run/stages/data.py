"""The data stage: the train, validation and test pipelines, and the key they hash to."""
from __future__ import annotations

import dataclasses

from pipeline.data import datasets as data_sets
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


def load_data(section, *, input_size: int, channels: int, batch_size: int, seed: int) -> Data:
    """Loads ``config.data`` at the model's input size and channels.

    Args:
      section: the ``config.data`` section.
      input_size: side of the model input (``model.input_size``, 0 = the data's own).
      channels: channels of the model input (``model.channels``, 0 = the data's own).
      batch_size: examples per training batch (``train.batch_size``).
      seed: fixes subsets, the validation split, shuffling and augmentation.

    Returns:
      The :class:`Data`.

    Raises:
      DataError: missing or unreadable files, or options out of range.
      RegistryError: an unknown ``data.name``.
    """
    datasets = data_sets.make_datasets(
        section.name, data_dir=section.dir, batch_size=batch_size, val_split=section.val_split,
        subset=section.subset, test_subset=section.test_subset, image_size=input_size,
        channels=channels, flip=section.flip, shift=section.shift, seed=seed)
    return Data(datasets, fingerprint("data", section, input_size, channels, batch_size, seed))
