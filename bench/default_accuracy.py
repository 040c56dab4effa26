"""Test accuracy of the default run over seeds and ratios (issue #16's accuracy goal).

Each (ratio, seed) is one ``pipeline.main`` run of ``configs/default.py`` in a
fresh workdir: the shipped baseline is loaded, pruned by the ratio of its MACs
at the config's defaults and fine-tuned by the default recipe; the seed sets
the shuffling and augmentation of the fine-tune (the L1 plan does not depend on
it). Only what the accuracy does not depend on is left out, to save time: the
sensitivity scan (report-only), every export variant but ``pruned_fp32`` and
the latency timing. ``--overrides`` adds config flags to every run, to measure
a candidate change of the defaults. Prints one line per run and a median
(min-max) per ratio; ``--json`` gets each run appended as it finishes.

Usage:
  .venv/bin/python bench/default_accuracy.py --ratios=0.5,0.75 --seeds=0,1,2 \
      [--overrides=--config.finetune.distill=True] [--json=bench/results/default_accuracy.json]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pipeline import atomic  # noqa: E402

flags.DEFINE_list("ratios", ["0.5", "0.75"], "Fractions of the baseline's MACs removed.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Config seeds; every ratio runs once per seed.")
flags.DEFINE_list("overrides", [], "Extra config flags for every run (a candidate default).")
flags.DEFINE_string("label", "default", "The name of this setting in the output and JSON.")
flags.DEFINE_string("json", "", "Appends one record per run to this JSON list ('' = none).")
FLAGS = flags.FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIMMED = ["--config.sensitivity.enabled=False", "--config.export.variants=('pruned_fp32',)",
           "--config.evaluate.latency_threads=()"]


def run_one(ratio: str, seed: str) -> dict:
    """One default run; returns its record (accuracies, MACs removed, wall time)."""
    with tempfile.TemporaryDirectory(prefix="default_accuracy_") as workdir:
        command = [sys.executable, "-m", "pipeline.main", "--config=configs/default.py",
                   f"--workdir={workdir}", f"--config.seed={seed}",
                   f"--config.prune.ratio={ratio}", *TRIMMED, *FLAGS.overrides]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return {"ratio": float(ratio), "seed": int(seed),
                    "error": f"exit {done.returncode}: {tail}"}
        seconds = time.perf_counter() - start
        with open(os.path.join(workdir, "report.json")) as f:
            report = json.load(f)
    base, pruned = report["baseline"], report["pruned"]
    return {"label": FLAGS.label, "overrides": FLAGS.overrides, "ratio": float(ratio),
            "seed": int(seed), "baseline": base["accuracy"], "before": pruned[
                "accuracy_before_finetune"], "after": pruned["accuracy"],
            "macs_removed": 1 - pruned["macs"] / base["macs"], "seconds": seconds}


def _append(path: str, records: list[dict]) -> None:
    old = []
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    atomic.write_text(path, json.dumps(old + records, indent=1) + "\n")


def main(argv):
    del argv
    records = []
    for ratio in FLAGS.ratios:
        for seed in FLAGS.seeds:
            record = run_one(ratio, seed)
            if "error" in record:  # one failed run does not lose the others
                print(f"{FLAGS.label} ratio {ratio} seed {seed}: {record['error']}", flush=True)
                continue
            records.append(record)
            if FLAGS.json:
                _append(FLAGS.json, [record])  # kept as it comes
            print(f"{FLAGS.label} ratio {ratio} seed {seed}: {record['macs_removed']:.1%} MACs "
                  f"removed, {record['before']:.2%} before, {record['after']:.2%} after "
                  f"({100 * (record['after'] - record['baseline']):+.2f} pt vs baseline), "
                  f"{record['seconds']:.0f} s", flush=True)
    print("| setting | ratio | MACs removed | after fine-tuning, median (min-max) | vs baseline "
          "(pt) | seeds |\n|---|---|---|---|---|---|")
    for ratio in FLAGS.ratios:
        runs = [r for r in records if r["ratio"] == float(ratio)]
        if not runs:
            continue
        after = [r["after"] for r in runs]
        print(f"| {FLAGS.label} | {ratio} | {statistics.median(r['macs_removed'] for r in runs):.1%}"
              f" | {statistics.median(after):.2%} ({min(after):.2%}-{max(after):.2%}) | "
              f"{100 * (statistics.median(after) - runs[0]['baseline']):+.2f} | {len(runs)} |")


if __name__ == "__main__":
    app.run(main)
