"""What the model-making stages measure of a Keras model: test accuracy, MACs, parameters."""
from __future__ import annotations

from pipeline.data.datasets import Datasets
from pipeline.pruning.counting import count_macs, count_params
from pipeline.training import fit as train


def measure(model, datasets: Datasets) -> dict:
    """``{"accuracy", "macs", "params"}`` of ``model`` (compiled here) on the test split."""
    train.compile_model(model, train.Recipe(), datasets.steps_per_epoch)
    return {"accuracy": train.evaluate(model, datasets.test)["accuracy"],
            "macs": count_macs(model), "params": count_params(model)}
