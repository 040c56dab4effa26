"""What re-estimating BatchNorm statistics (``pipeline.training.bn_stats``) changes.

Two experiments, each in one process, printing JSON lines and a summary:

``--experiment=default``: the default run's pruning and fine-tuning
(``configs/default.py``: the shipped baseline, the config's ``prune`` section,
its fine-tuning recipe for ``--epochs`` epochs). Right after pruning, the test
accuracy with the statistics pruning left and re-estimated on ``--batches``
training batches (augmented, as the run uses them) or on unaugmented training
images; then two fine-tunes from the same pruned model, one with no
re-estimation anywhere (the old pipeline) and one re-estimated after pruning
and after fine-tuning (the run's ``finetune.bn_recalibrate_batches``), each
also measured the other way after fine-tuning.

``--experiment=xception``: a model from outside. A mini-Xception (strided
Conv2D stem, SeparableConv2D + BatchNorm blocks, residual adds through strided
1x1 convolutions, 8-128 channels, the Keras default BatchNorm momentum 0.99)
is trained for ``--pretrain_epochs`` on Fashion-MNIST classes 0-4, then
fine-tuned (Adam 1e-3, batch 32) for ``--epochs`` epochs of ``--steps`` steps
on classes 5-9 with the pixel values inverted (a new data set with other
statistics, as an outside model meets a user's images), after pruning 50% of
its MACs. Validation and test accuracy with the moving statistics fine-tuning
left, then re-estimated.

``--experiment=block_fc``: the pruned model of a finished ``:quick`` run
(``--workdir``), its ``fc`` kernel's weakest 80% of 1x4 blocks zeroed (what
the ``pruned_block_fc`` variant keeps), test accuracy with the statistics as
they were and re-estimated, no training.

Usage:
  .venv/bin/python bench/bn_reestimation.py --experiment=default --epochs=3
  .venv/bin/python bench/bn_reestimation.py --experiment=xception
  .venv/bin/python bench/bn_reestimation.py --experiment=block_fc --workdir=/tmp/h4_quick
"""
import json
import os
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pipeline  # noqa: E402  (first: selects tf_keras)
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from configs import default  # noqa: E402
from pipeline.data import datasets as data_sets  # noqa: E402
from pipeline.run import prune_settings, stages  # noqa: E402
from pipeline.training import bn_stats  # noqa: E402
from pipeline.training import fit as train  # noqa: E402

flags.DEFINE_enum("experiment", "default", ["default", "xception", "block_fc"],
                  "Which experiment.")
flags.DEFINE_string("workdir", "/tmp/h4_quick", "block_fc: a finished default:quick run.")
flags.DEFINE_integer("epochs", 3, "Fine-tuning epochs.")
flags.DEFINE_list("batches", ["10", "50", "200"], "Re-estimation batch counts tried right "
                  "after pruning (default experiment).")
flags.DEFINE_integer("run_batches", 50, "Batches of the re-estimated fine-tuning arm.")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_integer("pretrain_epochs", 4, "xception: epochs on the first data set.")
flags.DEFINE_integer("steps", 22, "xception: fine-tuning steps per epoch (batch 32).")
FLAGS = flags.FLAGS
L = tf_keras.layers


def _accuracy(model, dataset) -> float:
    train.compile_model(model, train.Recipe(), 1)
    return train.evaluate(model, dataset)["accuracy"]


def _copy(model):
    clone = tf_keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _line(**record) -> dict:
    print(json.dumps(record), flush=True)
    return record


def _finetune(model, datasets, recipe, batches, unaugmented=None) -> dict:
    """Fine-tunes ``model`` (re-estimating before and after when ``batches``)."""
    if batches:
        bn_stats.reestimate(model, datasets.train, batches)
    start = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        fitted = train.fit(model, datasets, recipe, scratch, verbose=0)
    stale = _accuracy(model, datasets.test)
    stale_val = _accuracy(model, datasets.val)
    bn_stats.reestimate(model, datasets.train, FLAGS.run_batches)
    return {"trained_before_reestimation": bool(batches), "epochs": fitted.epochs,
            "train_accuracy": fitted.history["accuracy"][-1],
            "test_stale": stale, "val_stale": stale_val,
            "test_reestimated": _accuracy(model, datasets.test),
            "val_reestimated": _accuracy(model, datasets.val),
            "seconds": time.time() - start}


def default_experiment() -> None:
    config = default.get_config()
    config.seed = FLAGS.seed
    config.finetune.epochs = FLAGS.epochs
    datasets = stages.load_data(config.data, input_size=config.model.input_size,
                                channels=config.model.channels,
                                batch_size=config.train.batch_size, seed=config.seed).datasets
    baseline = tf_keras.models.load_model(default.SHIPPED_BASELINE, compile=False)
    _line(what="baseline", test=_accuracy(baseline, datasets.test))
    tf_keras.utils.set_random_seed(config.seed)
    prune_config = prune_settings.prune_config(config.prune, config.seed, "/tmp/h4_tables",
                                               ratio=config.prune.ratio)
    result = pipeline.prune(baseline, prune_config, data=datasets.train)
    pruned = result.model
    _line(what="pruned", macs_removed=result.plan.removed["macs"], batches=0,
          test=_accuracy(pruned, datasets.test))
    plain = datasets.calibration.batch(config.train.batch_size)
    for batches in (int(b) for b in FLAGS.batches):
        for name, source in (("augmented", datasets.train), ("unaugmented", plain)):
            model = _copy(pruned)
            start = time.time()
            bn_stats.reestimate(model, source, batches)
            _line(what="pruned", data=name, batches=batches,
                  test=_accuracy(model, datasets.test), seconds=time.time() - start)
    recipe = train.Recipe.from_config(config.finetune)
    for batches in (0, FLAGS.run_batches):
        tf_keras.utils.set_random_seed(config.seed + 1)
        _line(what="finetuned", **_finetune(_copy(pruned), datasets, recipe, batches))


def mini_xception(input_shape, classes: int):
    """Xception-style: the shape of the outside model in issue 15, at 28x28."""
    x = inputs = tf_keras.Input(input_shape)
    for filters, stride in ((8, 1), (8, 1)):
        x = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
    for filters in (16, 32, 64, 128):
        residual = L.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x)
        residual = L.BatchNormalization()(residual)
        x = L.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
        x = L.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.MaxPooling2D(3, strides=2, padding="same")(x)
        x = L.Add()([x, residual])
    x = L.Conv2D(classes, 3, padding="same")(x)
    x = L.GlobalAveragePooling2D()(x)
    return tf_keras.Model(inputs, L.Softmax()(x), name="mini_xception")


def _task(x, y, classes, invert: bool):
    """The images of ``classes`` in [0, 1] (inverted: 1 - x), labels renumbered from 0."""
    keep = np.isin(y, classes)
    x, y = x[keep], np.searchsorted(classes, y[keep])
    x = x.astype(np.float32) / 255.0
    if invert:
        x = 1.0 - x
    return x, y


def xception_experiment() -> None:
    splits = data_sets.loaders.load("fashion_mnist", "", 0, 0)
    rng = np.random.default_rng(FLAGS.seed)
    tf_keras.utils.set_random_seed(FLAGS.seed)
    old, new = np.arange(5), np.arange(5, 10)
    xa, ya = _task(splits.x_train, splits.y_train, old, False)
    pick = rng.choice(len(xa), 6000, replace=False)
    model = mini_xception(xa.shape[1:], 5)
    model.compile(tf_keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(xa[pick], ya[pick], batch_size=32, epochs=FLAGS.pretrain_epochs, verbose=0)
    xo, yo = _task(splits.x_test, splits.y_test, old, False)
    _line(what="pretrained", test_first_task=model.evaluate(xo, yo, verbose=0)[1])
    xb, yb = _task(splits.x_train, splits.y_train, new, True)
    order = rng.permutation(len(xb))
    train_idx, val_idx = order[:32 * FLAGS.steps], order[32 * FLAGS.steps:][:1000]
    xt, yt = _task(splits.x_test, splits.y_test, new, True)
    batches = (tf.data.Dataset.from_tensor_slices((xb[train_idx], yb[train_idx]))
               .shuffle(len(train_idx), seed=FLAGS.seed).repeat().batch(32))
    datasets = data_sets.Datasets(
        train=batches,
        val=tf.data.Dataset.from_tensor_slices((xb[val_idx], yb[val_idx])).batch(128),
        test=tf.data.Dataset.from_tensor_slices((xt, yt)).batch(128), calibration=None,
        input_shape=xb.shape[1:], class_names=tuple(str(c) for c in new),
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(xt)},
        steps_per_epoch=FLAGS.steps)
    pruned = pipeline.prune(model, 0.5, round_to=1).model
    recipe = train.Recipe(epochs=FLAGS.epochs, lr=1e-3, optimizer="adam")
    for arm in (0, FLAGS.run_batches):
        tf_keras.utils.set_random_seed(FLAGS.seed + 1)
        _line(what="finetuned_new_task", **_finetune(_copy(pruned), datasets, recipe, arm))


def block_fc_experiment() -> None:
    config = default.get_config("quick")
    datasets = stages.load_data(config.data, input_size=28, channels=1,
                                batch_size=config.train.batch_size, seed=config.seed).datasets
    model = tf_keras.models.load_model(os.path.join(FLAGS.workdir, "pruned.keras"),
                                       compile=False)
    _line(what="pruned", test=_accuracy(model, datasets.test))
    fc = model.get_layer("fc")
    kernel, bias = fc.get_weights()
    blocks = np.abs(kernel).reshape(kernel.shape[0] // 4, 4, kernel.shape[1]).sum(axis=1)
    keep = np.repeat(blocks >= np.quantile(blocks, 0.8), 4, axis=0)
    fc.set_weights([kernel * keep, bias])
    _line(what="fc_blocks_zeroed", statistics="as left", test=_accuracy(model, datasets.test))
    bn_stats.reestimate(model, datasets.train, FLAGS.run_batches)
    _line(what="fc_blocks_zeroed", statistics="re-estimated",
          test=_accuracy(model, datasets.test))


def main(argv):
    del argv
    start = time.time()
    {"default": default_experiment, "xception": xception_experiment,
     "block_fc": block_fc_experiment}[FLAGS.experiment]()
    print(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    app.run(main)
