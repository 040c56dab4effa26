"""The profiling issue's three latency tables, measured through LiteRT on this machine.

Tables (``--table``):

* ``macs``: each model pruned globally by L1 to 25/50/75% fewer MACs with
  ``round_to`` 1, 8 and 16; latency against the unpruned model, and the
  efficiency = measured speed-up / MACs ratio (1.0: latency fell exactly as
  MACs did).
* ``unstructured``: tensorflow-model-optimization's magnitude pruning of every
  layer at 50% and 80% sparsity (stripped, converted with and without
  ``EXPERIMENTAL_SPARSITY``) side by side with filter pruning that removes the
  same fraction of parameters.
* ``sparse``: the export issue's 2:4 and 1x4 block-sparse FC variants against
  their dense parent (the model pruned by 50% of MACs with ``round_to=8``, so
  that channel counts are multiples of 4 and the layers are eligible).

Models: ``MobileNetV2`` and ``ResNet50`` (tf_keras.applications, 224x224,
random weights: latency does not depend on the values, except for the sparse
formats, whose zeros come from magnitude pruning of those random weights) and
``default`` (the shipped Fashion-MNIST VGG baseline). The timing is
:func:`pipeline.litert.ab.compare`: all of a model's files loaded together and
run round-robin, ``--repeats`` independent repeats, 1-thread runs pinned to one
CPU. Every ``.tflite`` goes to ``--outdir`` and is reused by a later run with
the same settings (``--convert_only`` builds them without timing), so the
timing can wait for a quiet machine.

Usage:
  .venv/bin/python bench/latency_tables.py --table=macs --threads=1,2 --repeats=3
  .venv/bin/python bench/latency_tables.py --table=unstructured --threads=1,2
  .venv/bin/python bench/latency_tables.py --table=sparse --threads=1,2
"""
import gzip
import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pipeline  # noqa: E402  (first: selects tf_keras)
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras  # noqa: E402
from configs import default  # noqa: E402
from pipeline import atomic  # noqa: E402
from pipeline.litert import ab as benchmark
from pipeline.export import variants as export
from pipeline.litert import timing as profile
from pipeline.export import sparse_check, sparse_finetune
from pipeline.api import plan_pruning  # noqa: E402

TABLES = ("macs", "unstructured", "sparse")
flags.DEFINE_enum("table", "macs", TABLES, "Which table.")
flags.DEFINE_list("models", ["MobileNetV2", "ResNet50", "default"], "Models.")
flags.DEFINE_list("ratios", ["0.25", "0.5", "0.75"], "MACs ratios (macs table).")
flags.DEFINE_list("round_to", ["1", "8", "16"], "round_to values (macs table).")
flags.DEFINE_list("sparsities", ["0.5", "0.8"], "Unstructured sparsities (unstructured table).")
flags.DEFINE_list("threads", ["1", "2"], "Thread counts.")
flags.DEFINE_integer("repeats", 3, "Independent timing repeats.")
flags.DEFINE_integer("min_runs", 30, "Minimum timed runs per model, thread count and repeat.")
flags.DEFINE_float("min_secs", 1.0, "Minimum seconds per model, thread count and repeat.")
flags.DEFINE_integer("size", 224, "Input size of the tf_keras.applications models.")
flags.DEFINE_string("outdir", "bench/results/latency", "Where .tflite files and JSON go.")
flags.DEFINE_boolean("convert_only", False, "Build the .tflite files, do not time them.")
FLAGS = flags.FLAGS


# ---------------------------------------------------------------- models


def build(name: str):
    """The unpruned model: an application with random weights, or the shipped baseline."""
    if name == "default":
        return tf_keras.models.load_model(default.SHIPPED_BASELINE, compile=False)
    builder = getattr(tf_keras.applications, name)
    tf_keras.utils.set_random_seed(0)
    return builder(weights=None, input_shape=(FLAGS.size, FLAGS.size, 3))


def convert(model, sparse: bool = False) -> bytes:
    """The export stage's converters: plain float32, or with ``EXPERIMENTAL_SPARSITY``."""
    return (export.convert_sparse if sparse else export.convert_fp32)(model, None)


class Files:
    """The ``.tflite`` files of one model and table, with their facts; reused across runs."""

    def __init__(self, table: str, model_name: str):
        self.dir = os.path.join(FLAGS.outdir, table, model_name)
        os.makedirs(self.dir, exist_ok=True)
        self.meta_path = os.path.join(self.dir, "meta.json")
        self.meta = {}
        if os.path.exists(self.meta_path):
            with open(self.meta_path) as f:
                self.meta = json.load(f)

    def path(self, label: str) -> str:
        return os.path.join(self.dir, label + ".tflite")

    def have(self, label: str) -> bool:
        return label in self.meta and os.path.exists(self.path(label))

    def add(self, label: str, flatbuffer: bytes, **facts) -> None:
        atomic.write_bytes(self.path(label), flatbuffer)
        self.note(label, dict(facts, size_bytes=len(flatbuffer),
                              gzip_bytes=len(gzip.compress(flatbuffer, compresslevel=9))))

    def skip(self, label: str, why: str) -> None:
        self.note(label, {"skipped": why})

    def note(self, label: str, facts: dict) -> None:
        """Records ``label``'s facts and saves the whole meta file."""
        self.meta[label] = facts
        atomic.write_text(self.meta_path, json.dumps(self.meta, indent=1, sort_keys=True) + "\n")


def dense_facts(model) -> dict:
    return {"macs": pipeline.count_macs(model), "params": pipeline.count_params(model)}


# ---------------------------------------------------------------- table builders


def build_macs(files: Files, name: str) -> list[str]:
    labels = ["dense"] + [f"macs{float(r):.2f}_rt{int(k)}" for r in FLAGS.ratios
                          for k in FLAGS.round_to]
    if all(files.have(l) or files.meta.get(l, {}).get("skipped") for l in labels):
        return [l for l in labels if files.have(l)]
    model = build(name)
    if not files.have("dense"):
        files.add("dense", convert(model), **dense_facts(model))
    for ratio in FLAGS.ratios:
        for round_to in FLAGS.round_to:
            label = f"macs{float(ratio):.2f}_rt{int(round_to)}"
            if files.have(label) or files.meta.get(label, {}).get("skipped"):
                continue
            try:
                pruned = pipeline.prune(model, float(ratio), target="macs", criterion="l1",
                                        scope="global", round_to=int(round_to)).model
            except pipeline.TargetError as e:  # e.g. round_to=32 on 32-channel layers
                files.skip(label, str(e))
                continue
            files.add(label, convert(pruned), **dense_facts(pruned),
                      ratio=float(ratio), round_to=int(round_to))
            print(f"[{name}] {label}: {files.meta[label]}", flush=True)
    return [l for l in labels if files.have(l)]


def magnitude_prune(model, sparsity_level: float):
    """TF-MOT's magnitude pruning of every supported layer at a constant sparsity.

    The masks are computed inside a training step, so one step runs at learning
    rate 0: the weights keep their values and the smallest ``sparsity_level``
    of each kernel is zeroed. Returns the stripped model.
    """
    schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity_level, begin_step=0, frequency=1)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    wrapped.compile(optimizer=tf_keras.optimizers.SGD(0.0),
                    loss=tf_keras.losses.SparseCategoricalCrossentropy())
    x = np.zeros((1,) + tuple(model.input_shape[1:]), np.float32)
    wrapped.fit(x, np.zeros((1,)), epochs=1, verbose=0,
                callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(wrapped)


def kernel_sparsity(model) -> float:
    """Fraction of zeros over the conv and dense kernels."""
    zeros = total = 0
    for layer in model.layers:
        for w in layer.weights:
            if "kernel" in w.name:
                values = w.numpy()
                zeros += int((values == 0).sum())
                total += values.size
    return zeros / max(total, 1)


def prune_to_params(model, fraction: float):
    """Filter pruning (global L1) removing ``fraction`` of the parameters (bisection on MACs)."""
    lo, hi = 0.0, 0.99
    plan = None
    for _ in range(20):
        mid = (lo + hi) / 2
        plan = plan_pruning(model, mid, target="macs")
        removed = 1 - plan.params_after / plan.params_before
        if abs(removed - fraction) < 0.005:
            break
        lo, hi = (mid, hi) if removed < fraction else (lo, mid)
    return pipeline.apply_plan(model, plan)


def build_unstructured(files: Files, name: str) -> list[str]:
    labels = ["dense"]
    for s in FLAGS.sparsities:
        pct = int(round(100 * float(s)))
        labels += [f"tfmot{pct}", f"tfmot{pct}_sparse", f"filters{pct}"]
    if all(files.have(l) for l in labels):
        return labels
    model = build(name)
    if not files.have("dense"):
        files.add("dense", convert(model), **dense_facts(model))
    for s in FLAGS.sparsities:
        pct = int(round(100 * float(s)))
        if not files.have(f"tfmot{pct}_sparse"):
            stripped = magnitude_prune(model, float(s))
            facts = dict(dense_facts(stripped), kernel_sparsity=kernel_sparsity(stripped))
            files.add(f"tfmot{pct}", convert(stripped), **facts)
            files.add(f"tfmot{pct}_sparse", convert(stripped, sparse=True), **facts)
        if not files.have(f"filters{pct}"):
            pruned = prune_to_params(model, float(s))
            files.add(f"filters{pct}", convert(pruned), **dense_facts(pruned))
        print(f"[{name}] {pct}%: " + ", ".join(
            f"{l}={files.meta[l]}" for l in labels if l in files.meta), flush=True)
    return labels


def build_sparse(files: Files, name: str) -> list[str]:
    labels = ["parent", "parent_sparse_flag", "2of4", "block_fc"]
    if all(files.have(l) or files.meta.get(l, {}).get("skipped") for l in labels):
        return [l for l in labels if files.have(l)]
    model = build(name)
    parent = pipeline.prune(model, 0.5, target="macs", round_to=8).model
    files.add("parent", convert(parent), **dense_facts(parent))
    files.add("parent_sparse_flag", convert(parent, sparse=True), **dense_facts(parent))
    x = np.random.default_rng(0).uniform(0, 1, (8,) + tuple(parent.input_shape[1:]))
    batches = tf.data.Dataset.from_tensors((x.astype(np.float32), np.zeros((8,), np.int64)))
    recipe = sparse_finetune.SparseRecipe(epochs=1, steps=1, lr=1e-9)
    for mode in ("2of4", "block_fc"):
        tuned = sparse_finetune.finetune_sparse(parent, mode, recipe, batches.repeat(), 1)
        if not tuned.pruned:
            files.skip(mode, "no eligible layer: " + "; ".join(
                f"{k}: {v}" for k, v in list(tuned.skipped.items())[:3]))
            continue
        files.add(mode, convert(tuned.model, sparse=True), **dense_facts(tuned.model),
                  layers_sparse=len(tuned.pruned), layers_dense=len(tuned.skipped),
                  kernel_sparsity=kernel_sparsity(tuned.model))
    check = sparse_check.check_2of4(files.path("2of4"))
    files.note("2of4", dict(files.meta["2of4"], kernels_in_file_2of4=len(check.eligible)))
    return [l for l in labels if files.have(l)]


BUILDERS = {"macs": build_macs, "unstructured": build_unstructured, "sparse": build_sparse}


# ---------------------------------------------------------------- timing and report


def time_files(files: Files, labels: list[str]) -> dict:
    threads = tuple(int(t) for t in FLAGS.threads)
    config = profile.ProfileConfig(threads=threads, min_runs=FLAGS.min_runs,
                                   min_secs=FLAGS.min_secs)
    result = benchmark.compare([files.path(l) for l in labels], threads, FLAGS.repeats, config)
    print(result.table(), flush=True)
    return result.to_dict()


def markdown(name: str, files: Files, labels: list[str], timing: dict) -> str:
    threads = [int(t) for t in FLAGS.threads]
    base = files.meta[labels[0]]
    head = ["model", "variant", "MACs", "params", "size", "gzip"]
    for t in threads:
        head += [f"p50 {t}T ms (range)", f"speed-up {t}T (range)"]
    head += [f"efficiency {t}T" for t in threads]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, result in zip(labels, timing["models"]):
        m = files.meta[label]
        cells = [name, label, f"{m['macs'] / 1e6:.1f} M", f"{m['params'] / 1e6:.3f} M",
                 f"{m['size_bytes'] / 2**20:.2f} MB", f"{m['gzip_bytes'] / 2**20:.2f} MB"]
        effs = []
        for t in map(str, threads):
            lo, hi = result["p50_range_ms"][t]
            speed = result["speedup"][t]
            cells += [f"{result['latency_ms'][t]['p50']:.2f} ({lo:.2f}-{hi:.2f})",
                      f"{speed['value']:.2f}x ({speed['min']:.2f}-{speed['max']:.2f})"]
            effs.append(f"{speed['value'] / (base['macs'] / m['macs']):.2f}")
        rows.append("| " + " | ".join(cells + effs) + " |")
    return "\n".join(rows)


def main(argv):
    del argv
    report = {}
    for name in FLAGS.models:
        files = Files(FLAGS.table, name)
        labels = BUILDERS[FLAGS.table](files, name)
        tf_keras.backend.clear_session()
        if FLAGS.convert_only:
            continue
        timing = time_files(files, labels)
        report[name] = {"labels": labels, "meta": files.meta, "timing": timing}
        print(markdown(name, files, labels, timing), flush=True)
    if report:
        path = os.path.join(FLAGS.outdir, f"{FLAGS.table}.json")
        atomic.write_text(path, json.dumps(report, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
