"""Time and peak extra memory of analysis + plan + rebuild on the Kerases' applications models.

Each model runs in its own subprocess (clean memory accounting): build it at
224x224 with random weights, then time `pipeline.prune(model, 0.5,
target="macs")` split into analysis+plan and rebuild, and read the process'
peak resident memory above the level right after the model was built
(Linux VmHWM, reset through /proc/self/clear_refs).

``--kerases`` picks the families: ``tf_keras`` (``tf_keras.applications``)
and ``keras3`` (``keras.applications``, pruned through Keras 3's own graph
and rebuilt as a Keras 3 model).

Usage:
  .venv/bin/python bench/prune_speed.py [--models=ResNet50,MobileNetV2] [--repeats=3] \
      [--kerases=tf_keras,keras3]
"""
import json
import subprocess
import sys

from absl import app, flags

flags.DEFINE_list("models", ["ResNet50", "MobileNetV2", "EfficientNetB0", "DenseNet121",
                             "NASNetMobile", "ConvNeXtTiny"], "tf_keras.applications names.")
flags.DEFINE_integer("repeats", 3, "Runs per model (each in a fresh process).")
flags.DEFINE_list("kerases", ["tf_keras"], "Keras families to build with: tf_keras, keras3.")
flags.DEFINE_string("child", "", "Internal: run one model and print JSON.")
flags.DEFINE_string("child_keras", "tf_keras", "Internal: the child's Keras family.")
FLAGS = flags.FLAGS


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _child(name, family):
    import importlib
    import time

    import pipeline
    from pipeline.api import plan_pruning

    keras_module = importlib.import_module({"tf_keras": "tf_keras", "keras3": "keras"}[family])
    size = 331 if name == "NASNetLarge" else 224
    model = getattr(keras_module.applications, name)(weights=None, input_shape=(size, size, 3))
    weights_bytes = sum(w.numpy().nbytes for w in model.weights)
    before = _rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    plan = plan_pruning(model, 0.5, target="macs")
    planned = time.perf_counter()
    pruned = pipeline.apply_plan(model, plan)
    done = time.perf_counter()
    peak = _rss_kb("VmHWM")
    print(json.dumps({
        "model": name, "params": model.count_params(), "pruned_params": pruned.count_params(),
        "plan_s": planned - start, "apply_s": done - planned, "total_s": done - start,
        "peak_extra_mb": (peak - before) / 1024, "weights_mb": weights_bytes / 2**20,
    }))


def main(argv):
    del argv
    if FLAGS.child:
        _child(FLAGS.child, FLAGS.child_keras)
        return
    print("| model | Keras | params | plan (s) | plan + rebuild (s) | peak extra memory (MB) "
          "| weights (MB) | extra / weights |")
    print("|---|---|---|---|---|---|---|---|")
    for name, family in [(n, k) for n in FLAGS.models for k in FLAGS.kerases]:
        runs = []
        for _ in range(FLAGS.repeats):
            out = subprocess.run([sys.executable, __file__, f"--child={name}",
                                  f"--child_keras={family}"], check=True,
                                 capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        total = sorted(r["total_s"] for r in runs)
        plan = sorted(r["plan_s"] for r in runs)
        extra = sorted(r["peak_extra_mb"] for r in runs)
        w = runs[0]["weights_mb"]
        print(f"| {name} | {family} | {runs[0]['params'] / 1e6:.1f} M | {plan[len(plan) // 2]:.2f} "
              f"({plan[0]:.2f}-{plan[-1]:.2f}) | {total[len(total) // 2]:.2f} "
              f"({total[0]:.2f}-{total[-1]:.2f}) | {extra[len(extra) // 2]:.0f} "
              f"({extra[0]:.0f}-{extra[-1]:.0f}) | {w:.0f} | {extra[len(extra) // 2] / w:.2f} |",
              flush=True)


if __name__ == "__main__":
    app.run(main)
