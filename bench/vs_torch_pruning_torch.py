"""The torch half of bench/vs_torch_pruning.py: Torch-Pruning's files at half the MACs.

Runs in its own venv (/work/venvs/torchbench, see BENCHMARKS.md), never in
the project's and never under pytest. For each torchvision model (random
weights, seed 0, 224x224) and each ``--round_to``, Torch-Pruning 1.6's
``MetaPruner`` with global L1 importance (``MagnitudeImportance(p=1)``,
``global_pruning=True``, the classifier ignored) prunes a fresh copy;
:func:`bench.equal_macs.bisect_ratio` searches its ``pruning_ratio`` until
its own counter (``tp.utils.count_ops_and_params``) shows ``--target`` of the
MACs removed, within ``--tolerance``. The dense model and each pruned one are
converted with litert-torch (inputs channels-last, as a Keras model takes
them) and checked against torch on one random input. ``torch.json`` records
each file's MACs, ratio, bisection steps, and the seconds of one prune at the
found ratio (the figure comparable to one ``pipeline.prune`` call) and of the
whole bisection.

Usage:
  /work/venvs/torchbench/bin/python bench/vs_torch_pruning_torch.py \\
      --outdir=/tmp/vs_torch_pruning/torch --round_to=8,32
"""
import copy
import json
import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import litert_torch  # noqa: E402
import torch  # noqa: E402
import torch_pruning as tp  # noqa: E402
import torchvision  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from bench.equal_macs import bisect_ratio  # noqa: E402

MODELS = {"MobileNetV2": ("mobilenet_v2", lambda m: m.classifier[1]),
          "ResNet50": ("resnet50", lambda m: m.fc)}

flags.DEFINE_list("models", list(MODELS), "Keras application names (torchvision's alike).")
flags.DEFINE_list("round_to", ["8", "32"], "Torch-Pruning round_to values.")
flags.DEFINE_float("target", 0.5, "Fraction of MACs removed, by Torch-Pruning's own count.")
flags.DEFINE_float("tolerance", 0.005, "Accepted distance to --target (absolute).")
flags.DEFINE_string("outdir", "/tmp/vs_torch_pruning/torch", "Where files and torch.json go.")
FLAGS = flags.FLAGS


def fresh(name: str):
    torch.manual_seed(0)
    return getattr(torchvision.models, MODELS[name][0])(weights=None).eval()


def prune(model, example, ratio: float, round_to: int, classifier):
    """A pruned deep copy of ``model`` at ``ratio``; (model, seconds of MetaPruner + step)."""
    model = copy.deepcopy(model)
    start = time.perf_counter()
    pruner = tp.pruner.MetaPruner(
        model, example, importance=tp.importance.MagnitudeImportance(p=1),
        global_pruning=True, pruning_ratio=ratio, round_to=round_to,
        ignored_layers=[classifier(model)])
    pruner.step()
    return model, time.perf_counter() - start


def macs(model, example) -> int:
    return int(tp.utils.count_ops_and_params(model, example)[0])


def export(model, path: str, example) -> dict:
    """Converts ``model`` (NCHW) to a channels-last ``.tflite`` at ``path``, checked on one input."""
    wrapped = litert_torch.to_channel_last_io(model, args=[0]).eval()
    nhwc = example.permute(0, 2, 3, 1).contiguous()
    start = time.perf_counter()
    edge = litert_torch.convert(wrapped, (nhwc,))
    temporary = path + ".tmp"
    edge.export(temporary)
    os.replace(temporary, path)  # an interrupted run leaves no half-written model
    seconds = time.perf_counter() - start
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], nhwc.numpy())
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    with torch.no_grad():
        want = model(example).numpy()
    # Random weights leave logits near 1e-9 (torchvision's init), so the check is relative.
    scale = max(float(np.abs(want).max()), 1e-30)
    error = float(np.abs(got - want).max()) / scale
    if error > 1e-3:
        raise RuntimeError(f"{path}: litert-torch's file differs from torch by {error:.3g} "
                           f"of the largest logit ({scale:.3g}) on one random input")
    return {"convert_s": seconds, "max_rel_error": error, "max_abs_logit": scale}


def family(name: str) -> dict:
    model = fresh(name)
    example = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    classifier = MODELS[name][1]
    dense_macs = macs(model, example)
    folder = os.path.join(FLAGS.outdir, name)
    os.makedirs(folder, exist_ok=True)
    out = {"dense": {"tflite": os.path.join(folder, "dense.tflite"), "tp_macs": dense_macs,
                     "params": sum(p.numel() for p in model.parameters())}}
    out["dense"].update(export(model, out["dense"]["tflite"], example))
    for round_to in (int(r) for r in FLAGS.round_to):
        def measure(ratio):
            pruned, _ = prune(model, example, ratio, round_to, classifier)
            return 1.0 - macs(pruned, example) / dense_macs, None

        start = time.perf_counter()
        found = bisect_ratio(measure, FLAGS.target, FLAGS.tolerance)
        bisect_s = time.perf_counter() - start
        pruned, prune_s = prune(model, example, found.ratio, round_to, classifier)
        label = f"tp_rt{round_to}"
        facts = {"tflite": os.path.join(folder, label + ".tflite"), "round_to": round_to,
                 "pruning_ratio": found.ratio, "tp_macs": macs(pruned, example),
                 "tp_removed": found.removed, "bisection": [list(s) for s in found.steps],
                 "prune_s": prune_s, "bisect_s": bisect_s,
                 "params": sum(p.numel() for p in pruned.parameters())}
        facts.update(export(pruned, facts["tflite"], example))
        out[label] = facts
        print(f"[{name}] {label}: ratio {found.ratio:.4f}, {found.removed:.4f} of MACs removed "
              f"(Torch-Pruning's count), prune {prune_s:.1f} s, bisection {bisect_s:.0f} s "
              f"({len(found.steps)} steps)", flush=True)
    return out


def main(argv):
    del argv
    report = {"versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                           "torch_pruning": tp.__version__,
                           "litert_torch": litert_torch.__version__},
              "target": FLAGS.target, "tolerance": FLAGS.tolerance, "models": {}}
    for name in FLAGS.models:
        report["models"][name] = family(name)
    path = os.path.join(FLAGS.outdir, "torch.json")
    with open(path + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
