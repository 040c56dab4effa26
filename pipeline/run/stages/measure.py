"""What the model-making stages measure of a Keras model: test accuracy, MACs, parameters."""
from __future__ import annotations

from pipeline.data.datasets import Datasets
from pipeline.pruning.counting import count_macs, count_params
from pipeline.training import fit as train


def measure(model, datasets: Datasets, output: str = "") -> dict:
    """``{"accuracy", "macs", "params"}`` of ``model`` (compiled here) on the test split.

    Args:
      model: the Keras model.
      datasets: the data stage's pipelines.
      output: a multi-head model's classifier output layer (``model.output``; '' = the
        output of the data's class count).
    """
    train.compile_model(model, train.Recipe(), datasets.steps_per_epoch)
    accuracy = train.evaluate(model, datasets.test, datasets.num_classes, output)["accuracy"]
    return {"accuracy": accuracy,
            "macs": count_macs(model), "params": count_params(model)}
