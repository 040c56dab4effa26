"""Ours at the API defaults beside Torch-Pruning at half the MACs, all files in one LiteRT run.

Two halves, each in its own venv. The torch half
(bench/vs_torch_pruning_torch.py, in /work/venvs/torchbench) prunes
torchvision's MobileNetV2 and ResNet50 (random weights, 224x224) with
Torch-Pruning 1.6's ``MetaPruner`` (global L1) at ``round_to`` 8 and 32,
bisecting its ratio until its own counter shows half the MACs removed, and
converts the dense and pruned models with litert-torch; it writes
``torch.json``. This half, in the project's .venv, prunes the same
architectures from ``tf_keras.applications`` (seed 0, random weights) with
``pipeline.prune(model, --ratio)`` at every default (MACs target, global L1,
``round_to="auto"``), exports float32 files as the pipeline does
(:func:`pipeline.export.variants.convert_fp32`), then times every file of
both tools and both dense parents in one interleaved run per thread count
(:func:`bench.auto_alignment.paired`: all files loaded together and run
round-robin, the first file rotating between ``--repeats`` blocks, 1 thread
pinned). Each pruned file's speed-up is paired with its own dense parent
within a block: the table gives the median and min-max over blocks of the
p50 ratio (and, at 1 thread, of the thread-CPU-time ratio, which leaves out
the time other jobs held the CPU). MACs removed are given by each tool's own
count and by one count read off the ``.tflite`` files
(:func:`bench.equal_macs.tflite_macs`). The last lines pair the two tools
within each block (ours' speed-up over Torch-Pruning's) and call one faster
only when that ratio's min-max excludes 1.0. ``--report=run.json`` prints a
saved run's table again without timing.

Usage:
  /work/venvs/torchbench/bin/python bench/vs_torch_pruning_torch.py \\
      --outdir=/tmp/vs_torch_pruning/torch --round_to=8,32
  .venv/bin/python bench/vs_torch_pruning.py --torch_dir=/tmp/vs_torch_pruning/torch \\
      --threads=1,2 --repeats=9 --json=bench/results/vs_torch_pruning.json
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench import auto_alignment  # noqa: E402  (imports pipeline first; its flags are ours)
from bench.equal_macs import tflite_macs  # noqa: E402
import pipeline  # noqa: E402
import tf_keras  # noqa: E402
from pipeline import atomic  # noqa: E402
from pipeline.export.variants import convert_fp32  # noqa: E402
from pipeline.litert import timing as profile  # noqa: E402

flags.DEFINE_string("torch_dir", "/tmp/vs_torch_pruning/torch",
                    "The torch half's --outdir (torch.json and its .tflite files).")
flags.DEFINE_string("report", "", "Print the table and verdicts of this saved --json, time nothing.")
flags.DEFINE_string("torch_python", "", "If set and torch.json is missing, run the torch half "
                    "with this interpreter (e.g. /work/venvs/torchbench/bin/python).")
FLAGS = flags.FLAGS
FLAGS.set_default("outdir", "/tmp/vs_torch_pruning/ours")
FLAGS.set_default("repeats", 9)
TORCH_HALF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vs_torch_pruning_torch.py")


def torch_files() -> dict:
    """torch.json of the torch half, made first with --torch_python when missing."""
    path = os.path.join(FLAGS.torch_dir, "torch.json")
    if not os.path.exists(path) and FLAGS.torch_python:
        subprocess.run([FLAGS.torch_python, TORCH_HALF, f"--outdir={FLAGS.torch_dir}",
                        f"--target={FLAGS.ratio}", f"--models={','.join(FLAGS.models)}"],
                       check=True)
    if not os.path.exists(path):
        raise app.UsageError(f"no {path}; run the torch half first: /work/venvs/torchbench/bin/"
                             f"python {TORCH_HALF} --outdir={FLAGS.torch_dir}, or pass "
                             "--torch_python")
    report = json.load(open(path))
    if abs(report["target"] - FLAGS.ratio) > 1e-9:
        raise app.UsageError(f"{path} was pruned to {report['target']} of MACs, not --ratio="
                             f"{FLAGS.ratio}; rerun the torch half with --target={FLAGS.ratio}")
    missing = [n for n in FLAGS.models if n not in report["models"]]
    if missing:
        raise app.UsageError(f"{path} has no {missing}; rerun the torch half with --models")
    return report


def build_ours(name: str) -> dict:
    """Our dense and pruned files of ``name`` (reused when present) and their facts."""
    folder = os.path.join(FLAGS.outdir, name)
    os.makedirs(folder, exist_ok=True)
    meta_path = os.path.join(folder, "meta.json")
    files = {label: os.path.join(folder, label + ".tflite") for label in ("dense", "ours")}
    if os.path.exists(meta_path) and all(map(os.path.exists, files.values())):
        return json.load(open(meta_path))
    tf_keras.utils.set_random_seed(0)
    model = getattr(tf_keras.applications, name)(weights=None, input_shape=(224, 224, 3))
    start = time.perf_counter()
    result = pipeline.prune(model, FLAGS.ratio)  # every other setting at the API default
    prune_s = time.perf_counter() - start
    atomic.write_bytes(files["dense"], convert_fp32(model, None))
    atomic.write_bytes(files["ours"], convert_fp32(result.model, None))
    meta = {"dense": {"tflite": files["dense"], "own_macs": pipeline.count_macs(model)},
            "ours": {"tflite": files["ours"], "own_macs": pipeline.count_macs(result.model),
                     "own_removed": result.plan.removed["macs"], "prune_s": prune_s,
                     "alignment": (result.plan.alignment or {}).get("summary", "none"),
                     "settings": {k: str(v) for k, v in result.plan.settings.items()}}}
    atomic.write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    tf_keras.backend.clear_session()
    print(f"[{name}] ours: {meta['ours']['own_removed']:.4f} of MACs removed, prune "
          f"{prune_s:.1f} s; {meta['ours']['alignment']}", flush=True)
    return meta


def rows(torch_report: dict) -> list[dict]:
    """One row per file, each naming its dense parent: ours, then Torch-Pruning's per model."""
    out = []
    for name in FLAGS.models:
        ours = build_ours(name)
        theirs = torch_report["models"][name]
        out.append({"model": name, "tool": "tf_keras (dense)", "tflite": ours["dense"]["tflite"]})
        out.append({"model": name, "tool": "ours", "parent": ours["dense"]["tflite"],
                    "alignment": ours["ours"]["alignment"], **ours["ours"]})
        out.append({"model": name, "tool": "torchvision (dense)",
                    "tflite": theirs["dense"]["tflite"]})
        for label, facts in theirs.items():
            if label != "dense":
                out.append({"model": name, "tool": "Torch-Pruning", "parent":
                            theirs["dense"]["tflite"], "alignment": f"round_to={facts['round_to']}",
                            "own_removed": facts["tp_removed"], **facts})
    for row in out:
        row["tflite_macs"] = tflite_macs(row["tflite"])
        if "parent" in row:
            parent = tflite_macs(row["parent"])["macs"]
            row["tflite_removed"] = 1.0 - row["tflite_macs"]["macs"] / parent
    return out


def speedups(runs: dict, child: str, parent: str) -> dict:
    """Per statistic: parent / child per block, then [median, min, max] and the block ratios."""
    out = {}
    for stat in ("p50_ms", "min_ms", "cpu_p50_ms"):
        if stat in runs[child]:
            ratios = np.asarray(runs[parent][stat]) / np.asarray(runs[child][stat])
            out[stat] = {"median": float(np.median(ratios)), "min": float(ratios.min()),
                         "max": float(ratios.max()), "blocks": ratios.tolist()}
    return out


def verdict(a: dict, b: dict, stat: str) -> str:
    """Ours (a) against Torch-Pruning (b), paired within blocks: faster only if the range excludes 1."""
    ratios = np.asarray(a[stat]["blocks"]) / np.asarray(b[stat]["blocks"])
    low, mid, high = ratios.min(), np.median(ratios), ratios.max()
    word = ("ours faster" if low > 1.0 else "Torch-Pruning faster" if high < 1.0
            else "no measurable difference")
    return f"{word} (ours/theirs {mid:.3f}x, {low:.3f}-{high:.3f})"


def cell(s: dict | None) -> str:
    return "" if not s else f"{s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f})"


def table(table_rows: list[dict], threads: tuple[int, ...]) -> str:
    head = ["model", "tool", "alignment", "MACs removed (own count)", "MACs removed (.tflite)",
            "prune s"] + [f"{t}T speed-up (p50)" for t in threads] + (
            ["1T speed-up (CPU time)"] if 1 in threads else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table_rows:
        if "parent" not in r:
            continue
        prune = f"{r['prune_s']:.1f}" + (f" (bisection {r['bisect_s']:.0f})" if "bisect_s" in r
                                         else "")
        cells = [r["model"], r["tool"], r["alignment"], f"{r['own_removed']:.3f}",
                 f"{r['tflite_removed']:.3f}", prune]
        cells += [cell(r["speedup"][str(t)].get("p50_ms")) for t in threads]
        if 1 in threads:
            cells.append(cell(r["speedup"]["1"].get("cpu_p50_ms")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(table_rows: list[dict], threads: tuple[int, ...]) -> list[str]:
    """Ours against each Torch-Pruning file: p50 at every thread count, CPU time at 1."""
    out = []
    stats = [(t, "p50_ms") for t in threads] + ([(1, "cpu_p50_ms")] if 1 in threads else [])
    for name in dict.fromkeys(r["model"] for r in table_rows):
        ours = next(r for r in table_rows if r["model"] == name and r["tool"] == "ours")
        for r in table_rows:
            if r["model"] == name and r["tool"] == "Torch-Pruning":
                for t, stat in stats:
                    out.append(f"{name} {t}T {stat[:-3]}, ours vs Torch-Pruning {r['alignment']}: "
                               + verdict(ours["speedup"][str(t)], r["speedup"][str(t)], stat))
    return out


def show(report: dict) -> None:
    threads = tuple(int(t) for t in report["timing"])
    print(table(report["rows"], threads))
    for line in verdicts(report["rows"], threads):
        print(line)
    print(f"load average (1, 5, 15 min) before {report['load_before']}, after "
          f"{report['load_after']}; {report['repeats']} paired blocks per thread count")


def main(argv):
    del argv
    if FLAGS.report:
        show(json.load(open(FLAGS.report)))
        return
    table_rows = rows(torch_files())
    threads = tuple(int(t) for t in FLAGS.threads)
    if FLAGS.convert_only:
        return
    config = profile.ProfileConfig(threads=threads, min_runs=FLAGS.min_runs,
                                   min_secs=FLAGS.min_secs)
    paths = [r["tflite"] for r in table_rows]
    report = {"load_before": os.getloadavg(), "ratio": FLAGS.ratio, "repeats": FLAGS.repeats,
              "timing": {}}
    for t in threads:
        runs = auto_alignment.paired(paths, t, FLAGS.repeats, config)  # one interleaved run
        report["timing"][str(t)] = runs
        for r in table_rows:
            if "parent" in r:
                r.setdefault("speedup", {})[str(t)] = speedups(runs, r["tflite"], r["parent"])
    report["load_after"] = os.getloadavg()
    report["rows"] = table_rows
    show(report)
    if FLAGS.json:
        atomic.write_text(FLAGS.json, json.dumps(report, indent=1, default=str) + "\n")
        print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
