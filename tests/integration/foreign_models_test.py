"""Models from outside, saved as their authors saved them, through the command line.

Each model (see tests/foreign_models.py) is trained for an epoch on a generated
folder of 64x64 PNGs, saved in its author's format, and pruned by
``configs/default.py`` with only ``model.path`` and the folder given, at the
README's defaults: the default prune target (50% of MACs) and the default
variant list. What is shrunk leaves the code paths the same: a few dozen images
per class, batches of 16, one fine-tuning epoch, one sensitivity ratio, one
latency thread count. Each run exits 0 and every default variant is written
(and verified) or explained in ``report.json`` with a reason; the exception is
MobileNetV2's quantized variants, whose parity check may refuse a genuinely
distorted int8 file (status 3, one stderr line each; see its test).

The mini-Xception and the O-Net also come as Keras 3 ``.keras`` files: the run stays
in Keras 3 (training, distillation of the heads, every export variant), writes a
Keras 3 ``pruned.keras`` that plain Keras 3 loads in a fresh Python without this
project or any custom object, and that model's outputs are the pruned_fp32 file's.

The multi-head MTCNN O-Net prunes, fine-tunes and exports with every head kept
(the face classifier on the labels, the bbox and landmark heads held to the
unpruned model): each file has the three outputs, verified each against its own
scale, and its accuracy is read from the face classifier by name.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import foreign_models as fm
from configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_VARIANTS = list(default.get_config().export.variants)
SMALL = ("--config.train.batch_size=16", "--config.finetune.epochs=1",
         "--config.sensitivity.ratios=(0.5,)", "--config.evaluate.latency_threads=(1,)")


# Loads a .keras file in plain Keras 3 (no pipeline, no tf_keras, no custom objects) and
# saves its outputs on the given images.
PLAIN_KERAS = """
import json, sys
import numpy as np
import keras
model = keras.saving.load_model(sys.argv[1])
outputs = model(np.load(sys.argv[2]))
outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
np.savez(sys.argv[3], **{n: np.asarray(o) for n, o in zip(model.output_names, outputs)})
print(json.dumps({"module": type(model).__module__, "foreign": sorted(
    m for m in ("pipeline", "tf_keras", "models") if m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The model files and the image folders, made by tests/foreign_models.py in a
    process of its own with oneDNN off: the authors' training of the mini-Xception hits the
    oneDNN crash this pipeline restarts around (pipeline.training.traps)."""
    root = tmp_path_factory.mktemp("foreign")
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0")
    made = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "foreign_models.py"),
                           str(root)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    return json.loads(made.stdout.strip().splitlines()[-1])


def run(workdir, model, folder, *overrides):
    command = [sys.executable, "-m", "pipeline.main", f"--config={ROOT}/configs/default.py",
               f"--workdir={workdir}", f"--config.model.path={model}",
               "--config.data.name=folder", f"--config.data.dir={folder}", *SMALL, *overrides]
    start = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(f"{os.path.basename(model)}: exit {done.returncode} in {time.time() - start:.0f} s")
    return done


# The quantized variants of a weakly trained model (one fine-tuning epoch on a few dozen
# images) may miss the 99% agreement bar by an image or two, and then must say why: since
# BatchNorm is re-estimated before validation (issue #15), the tf_keras mini-Xception's
# pruned_int8 agreed on 98.51% of 134 images, exactly what its own weights moved by half
# an int8 step agreed with themselves (the answers sit within rounding noise).
QUANTIZED = ("pruned_int8", "pruned_dynamic_int8")


def check_quantized_failures(done, variants):
    """Status 3 exactly when a quantized variant failed, each failure diagnosed on stderr."""
    failed = [n for n, v in variants.items() if v["status"] == "failed"]
    assert set(failed) <= set(QUANTIZED), failed
    assert done.returncode == (3 if failed else 0)
    lines = [l for l in done.stderr.splitlines() if l.startswith("prune-pipeline:")
             and "variant failed" in l]
    assert sorted(lines) == sorted(
        f"prune-pipeline: variant failed: {n}: {variants[n]['reason']}" for n in failed), lines
    for name in failed:
        assert "agrees with its Keras model" in variants[name]["reason"], variants[name]
        assert "agrees with itself on" in variants[name]["reason"], variants[name]


def check_every_default_variant(workdir, done, may_fail=()):
    """Status 0 (3 if a variant of ``may_fail`` failed): each default variant written or
    explained, with its reason."""
    assert done.returncode in ((0, 3) if may_fail else (0,)), (done.stdout[-2000:],
                                                                  done.stderr[-3000:])
    report = json.loads((workdir / "report.json").read_text())
    assert report["config"]["export"]["variants"] == DEFAULT_VARIANTS
    assert abs(report["pruned"]["removed"]["macs"] - 0.5) <= 0.03
    variants = {v["name"]: v for v in report["variants"]}
    assert list(variants) == DEFAULT_VARIANTS
    for name, v in variants.items():
        if v["status"] == "ok":
            assert (workdir / v["tflite"]).stat().st_size > 0, name
            assert 0 <= v["accuracy"] <= 1, name
        else:  # explained: not applicable (or an allowed failure), with the reason
            assert v["status"] == "not_applicable" or (
                v["status"] == "failed" and name in may_fail), (name, v)
            assert v["reason"], (name, v)
            assert not (workdir / "tflite" / f"{name}.tflite").exists()
    return report, variants


@pytest.mark.slow
def test_mini_xception_hdf5(files, tmp_path):
    done = run(tmp_path, files["xception"], files["folders"]["7"])
    report, variants = check_every_default_variant(tmp_path, done, may_fail=QUANTIZED)
    check_quantized_failures(done, variants)
    assert [n for n, v in variants.items() if v["status"] == "not_applicable"] == [
        "pruned_block_fc"]
    # No Dense layer: the 1x4 block-sparse FC variant has nothing to sparsify.
    assert "no layer is eligible" in variants["pruned_block_fc"]["reason"]
    # One fine-tuning epoch on 17 batches: 53-71% here against 14% chance.
    assert variants["pruned_fp32"]["accuracy"] > 0.3


@pytest.mark.slow
def test_mobilenet_v2_keras(files, tmp_path):
    """Every float variant is written. The quantized ones may fail their parity check, and
    then say why: after one fine-tuning epoch on 77 images the pruned MobileNetV2 is near
    chance (32% of 4 classes), its scores near-uniform, and its answers move under
    int8-sized weight rounding alone (the Keras model, its weights moved at random by up
    to half an int8 step, agreed with itself on 85% of the folder's 96 images; its
    pruned_int8 file on 75%). Keeping its worst layers in float did not help (the 1 to 20
    of 65 with the largest error per quantization step: 74-83%): the error is spread over
    the depth, not in a few layers. A failed variant is recorded with its
    reason, writes no file, and the run finishes with status 3 and one stderr line each."""
    quantized = ("pruned_int8", "pruned_dynamic_int8")
    done = run(tmp_path, files["mobilenet"], files["folders"]["4"])
    report, variants = check_every_default_variant(tmp_path, done, may_fail=quantized)
    failed = [n for n, v in variants.items() if v["status"] == "failed"]
    assert done.returncode == (3 if failed else 0)
    lines = [l for l in done.stderr.splitlines() if l.startswith("prune-pipeline:")]
    assert sorted(lines) == sorted(
        f"prune-pipeline: variant failed: {n}: {variants[n]['reason']}" for n in failed), lines
    for name in failed:
        assert "agrees with its Keras model" in variants[name]["reason"], variants[name]
        assert "agrees with itself on" in variants[name]["reason"], variants[name]  # diagnosed
    assert all(v["status"] == "ok" for n, v in variants.items()
               if n not in ("pruned_block_fc",) + quantized)
    assert variants["pruned_block_fc"]["status"] == "not_applicable"  # no Dense but the classifier


@pytest.mark.slow
def test_old_sequential_h5_on_symmetric_input(files, tmp_path):
    done = run(tmp_path, files["sequential"], files["folders"]["4"],
               "--config.model.preprocess=symmetric")
    report, variants = check_every_default_variant(tmp_path, done)
    assert [n for n, v in variants.items() if v["status"] != "ok"] == []


@pytest.mark.slow
def test_mtcnn_prunes_fine_tunes_and_exports_every_head(files, tmp_path):
    """At the defaults: pruned, fine-tuned and exported with all three heads, status 0."""
    import tf_keras
    from ai_edge_litert.interpreter import Interpreter
    from pipeline.litert import tensors
    done = run(tmp_path, files["onet"], files["folders"]["2"])
    report, variants = check_every_default_variant(tmp_path, done)
    assert [n for n, v in variants.items() if v["status"] != "ok"] == []
    for name, v in variants.items():
        assert v["parity"]["classifier_output"] == "conv6-1", (name, v["parity"])
        assert sorted(v["parity"]["outputs"]) == ["conv6-1", "conv6-2", "conv6-3"]
        names = tensors.output_names(Interpreter(model_path=str(tmp_path / v["tflite"])))
        assert sorted(names.values()) == ["conv6-1", "conv6-2", "conv6-3"], name
    # block-FC: conv5 (Dense, 1152 inputs) made sparse; the three heads are outputs, kept dense.
    assert any(n.startswith("block_fc: sparse fine-tune") and n.endswith(" of conv5")
               for n in variants["pruned_block_fc"]["notes"]), variants["pruned_block_fc"]
    base = tf_keras.models.load_model(tmp_path / "baseline.keras", compile=False)
    pruned = tf_keras.models.load_model(tmp_path / "pruned.keras", compile=False)
    assert pruned.output_names == base.output_names == ["conv6-2", "conv6-3", "conv6-1"]
    assert [tuple(o.shape) for o in pruned.outputs] == [(None, 4), (None, 10), (None, 2)]
    assert " - heads_loss: " in done.stdout  # the fine-tunes held the other heads
    x, _ = fm.folder_arrays(files["folders"]["2"], 48, 3)
    x = x[:32] / 255.0
    for b, p in zip(base(x)[:2], pruned(x)[:2]):  # bbox and landmarks held to the original
        assert float(np.mean((np.asarray(p) - np.asarray(b)) ** 2)) < 0.05


def check_plain_keras3(workdir, images, tmp_path):
    """``pruned.keras`` is a Keras 3 file that plain Keras 3 loads and runs in a fresh Python
    (no pipeline, no custom objects), and its outputs are the pruned_fp32 file's."""
    from ai_edge_litert.interpreter import Interpreter
    from pipeline import keras_api
    from pipeline.litert import tensors
    model = str(workdir / "pruned.keras")
    assert keras_api.file_package(model) == "keras"
    tmp_path.mkdir(exist_ok=True)
    np.save(tmp_path / "images.npy", images)
    done = subprocess.run([sys.executable, "-c", PLAIN_KERAS, model, str(tmp_path / "images.npy"),
                           str(tmp_path / "outputs.npz")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={  # a plain user's environment
                              k: v for k, v in os.environ.items()
                              if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")})
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["module"].startswith("keras.") and loaded["foreign"] == [], loaded
    outputs = dict(np.load(tmp_path / "outputs.npz"))
    interpreter = Interpreter(model_path=str(workdir / "tflite" / "pruned_fp32.tflite"))
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    names = tensors.output_names(interpreter)
    if len(outputs) == 1:  # one output: its name in the file does not matter (output_0)
        names = {index: next(iter(outputs)) for index in names}
    assert sorted(names.values()) == sorted(outputs)
    rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
    for i in range(len(images)):
        interpreter.set_tensor(detail["index"], tensors.file_input(rgb[i:i + 1], detail))
        interpreter.invoke()
        for index, name in names.items():
            got = interpreter.get_tensor(index)[0]
            want = outputs[name][i]
            assert np.max(np.abs(got - want)) <= 1e-4 * max(np.max(np.abs(want)), 1e-6), name


def check_keras3_report(workdir):
    """The report names the Keras 3 files and says which Keras they load in."""
    import keras
    report = json.loads((workdir / "report.json").read_text())
    for model in ("baseline", "pruned"):
        assert report[model]["framework"] == f"Keras {keras.__version__}", report[model]
    assert report["pruned"]["keras"] == "pruned.keras"
    assert f"(`pruned.keras`, Keras {keras.__version__})" in (workdir / "report.md").read_text()


@pytest.mark.slow
def test_mini_xception_keras3_file_stays_in_keras3(files, tmp_path):
    """A Keras 3 .keras file at the defaults: every variant written or explained, a Keras 3
    pruned.keras that plain Keras 3 loads with the file's outputs."""
    done = run(tmp_path, files["xception_keras3"], files["folders"]["7"])
    report, variants = check_every_default_variant(tmp_path, done, may_fail=QUANTIZED)
    # As the tf_keras one (above): measured, its pruned_int8 file and its own half-step-noise
    # copy both agree on 97.76% of the 134 images, after 1 or 3 fine-tuning epochs.
    check_quantized_failures(done, variants)
    assert [n for n, v in variants.items() if v["status"] == "not_applicable"] == [
        "pruned_block_fc"]
    assert variants["pruned_fp32"]["accuracy"] > 0.3
    check_keras3_report(tmp_path)
    x, _ = fm.folder_arrays(files["folders"]["7"], 64, 1)
    check_plain_keras3(tmp_path, (x[::7][:12] / 255.0).astype(np.float32), tmp_path / "plain")


@pytest.mark.slow
def test_mtcnn_keras3_file_keeps_every_head_in_keras3(files, tmp_path):
    """The multi-head O-Net from a Keras 3 file: the Keras 3 heads trainer fine-tunes it,
    every variant has the three outputs, and plain Keras 3 loads the pruned model."""
    done = run(tmp_path, files["onet_keras3"], files["folders"]["2"])
    report, variants = check_every_default_variant(tmp_path, done)
    assert [n for n, v in variants.items() if v["status"] != "ok"] == []
    assert " - heads_loss: " in done.stdout
    check_keras3_report(tmp_path)
    x, _ = fm.folder_arrays(files["folders"]["2"], 48, 3)
    check_plain_keras3(tmp_path, (x[::5][:12] / 255.0).astype(np.float32), tmp_path / "plain")
