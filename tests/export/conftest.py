"""Sparse fine-tunes of the tiny classifier, shared by the fine-tune and file-check tests."""
import pytest

from pipeline.export import sparse_finetune

RECIPE = sparse_finetune.SparseRecipe(epochs=1, steps=4)


@pytest.fixture(scope="session")
def two_of_four(tiny_classifier, tiny_data):
    return sparse_finetune.finetune_sparse(tiny_classifier, "2of4", RECIPE, tiny_data.train,
                                           tiny_data.steps_per_epoch)


@pytest.fixture(scope="session")
def block_fc(tiny_classifier, tiny_data):
    return sparse_finetune.finetune_sparse(tiny_classifier, "block_fc", RECIPE, tiny_data.train,
                                           tiny_data.steps_per_epoch)

