"""A second opinion on our speed-ups: Google's benchmark_litert_model beside pipeline.litert.ab.

For each pair of ``.tflite`` files (dense, pruned) the speed-up dense/pruned is
measured twice: by ``pipeline.litert.ab.compare`` (our interleaved timing,
1-thread runs pinned to one CPU, the median over repeats of each repeat's
p50 ratio) and by ``ai_edge_litert/tools/benchmark_litert_model.py`` (the
Python mirror of the C++ ``benchmark_litert_model``, LiteRT's CompiledModel
API on the CPU), run as a separate process per file, the two files
alternating, ``--repeats`` times; its speed-up is the median over repeats of
the ratio of its ``median_ms`` (it also reports ``avg_ms``). Both at 1 thread.

``--pair=name=dense.tflite,pruned.tflite`` (repeatable) names a pair; ``--zoo`` adds
MobileNetV2 and ResNet50 (tf_keras.applications, random weights, 224x224)
pruned to half their MACs (``pipeline.api``), converted to float32.

Usage:
  .venv/bin/python bench/litert_second_opinion.py \\
      --pair=vgg=WORK/tflite/baseline_fp32.tflite,WORK/tflite/pruned_fp32.tflite \\
      --zoo=MobileNetV2,ResNet50 \\
      --json=bench/results/litert_second_opinion.json
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

flags.DEFINE_multi_string("pair", [], "name=dense.tflite,pruned.tflite; repeat the flag.")
flags.DEFINE_list("zoo", [], "tf_keras.applications names to prune by half (MobileNetV2,ResNet50).")
flags.DEFINE_integer("repeats", 3, "Alternating runs of the tool per file; our own repeats.")
flags.DEFINE_integer("num_runs", 300, "The tool's --num_runs.")
flags.DEFINE_string("json", "", "Write the results here too.")
FLAGS = flags.FLAGS


def _tool_ms(path: str) -> dict:
    from ai_edge_litert.tools import benchmark_litert_model as tool
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, tool.__file__, f"--model={path}", "--num_threads=1",
                        f"--num_runs={FLAGS.num_runs}", "--warmup_runs=10",
                        f"--result_json={out.name}"], check=True, capture_output=True)
        return json.load(open(out.name))["latency"]


def _zoo_pair(name: str, directory: str) -> tuple[str, str]:
    import pipeline  # noqa: F401  (tf_keras before tensorflow)
    import tensorflow as tf
    import tf_keras
    from pipeline.api import apply_plan, plan_pruning
    model = getattr(tf_keras.applications, name)(weights=None, input_shape=(224, 224, 3))
    pruned = apply_plan(model, plan_pruning(model, 0.5, target="macs"))
    paths = []
    for tag, m in (("dense", model), ("pruned", pruned)):
        paths.append(os.path.join(directory, f"{name}_{tag}.tflite"))
        with open(paths[-1], "wb") as f:
            f.write(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    return paths[0], paths[1]


def _measure(name: str, dense: str, pruned: str) -> dict:
    from pipeline.litert import ab
    ours = ab.compare([dense, pruned], threads=(1,), repeats=FLAGS.repeats)
    (cell,) = ours.models[1].cells
    tool = {"dense": [], "pruned": []}
    for _ in range(FLAGS.repeats):
        for tag, path in (("dense", dense), ("pruned", pruned)):
            tool[tag].append(_tool_ms(path))
    ratios = [d["median_ms"] / p["median_ms"] for d, p in zip(tool["dense"], tool["pruned"])]
    avg_ratios = [d["avg_ms"] / p["avg_ms"] for d, p in zip(tool["dense"], tool["pruned"])]
    (dense_cell,) = ours.models[0].cells
    return {"name": name, "ours": {"speedup": cell.speedup, "range": list(cell.speedup_range),
                                   "dense_p50_ms": dense_cell.p50_ms, "pruned_p50_ms": cell.p50_ms},
            "tool": {"speedup": statistics.median(ratios), "range": [min(ratios), max(ratios)],
                     "speedup_avg": statistics.median(avg_ratios),
                     "dense_median_ms": [t["median_ms"] for t in tool["dense"]],
                     "pruned_median_ms": [t["median_ms"] for t in tool["pruned"]]}}


def main(argv):
    del argv
    pairs = []
    for item in FLAGS.pair:
        name, files = item.split("=", 1)
        pairs.append((name, *files.split(",")))
    with tempfile.TemporaryDirectory() as directory:
        pairs += [(name, *_zoo_pair(name, directory)) for name in FLAGS.zoo]
        rows = [_measure(*pair) for pair in pairs]
    print(f"{'model':<14} {'ours':>7} {'ours range':>12} {'tool':>7} {'tool range':>12} "
          f"{'tool avg':>8} {'diff':>6}")
    for r in rows:
        o, t = r["ours"], r["tool"]
        r["difference"] = t["speedup"] / o["speedup"] - 1
        print(f"{r['name']:<14} {o['speedup']:>6.2f}x {o['range'][0]:>5.2f}-{o['range'][1]:<5.2f} "
              f"{t['speedup']:>6.2f}x {t['range'][0]:>5.2f}-{t['range'][1]:<5.2f} "
              f"{t['speedup_avg']:>7.2f}x {r['difference']:>+6.1%}")
    if FLAGS.json:
        with open(FLAGS.json + ".tmp", "w") as f:
            json.dump(rows, f, indent=2)
        os.replace(FLAGS.json + ".tmp", FLAGS.json)


if __name__ == "__main__":
    app.run(main)
