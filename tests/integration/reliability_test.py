"""Reliability through the command line: bad inputs, interruptions, kill -9, determinism.

One good quick run (module-scoped, op-deterministic, four fine-tuning
epochs, one export variant) is the "earlier good run": every bad-input case
runs against a copy of its workdir and must fail with exactly one
``prune-pipeline: error:`` line on stderr (besides TensorFlow's own log
lines), no traceback, a non-zero exit, and the earlier ``report.json``,
``report.md`` and ``.tflite`` byte for byte. A second run of the same
command is stopped by SIGINT, SIGTERM and SIGKILL at successive epochs and
rerun each time: it must resume, finish, and match the uninterrupted run.
The Python API's side of the bad-input matrix is ``preflight_test.py``.
"""
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tf_keras
from bad_inputs import data_dirs, model_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "default.py") + ":quick"
BASE = ("--config.deterministic=True", "--config.data.subset=2000",
        "--config.finetune.epochs=4", "--config.finetune.patience=0",
        "--config.sensitivity.enabled=False", "--config.export.variants=('pruned_fp32',)",
        "--config.evaluate.latency_threads=()")
# TensorFlow's C++ start-up lines (glog format) and absl's note about them.
LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")
KEPT = ("report.json", "report.md", "tflite/pruned_fp32.tflite", "plan.json", "pruned.keras")


def command(workdir, *overrides):
    return [sys.executable, "-m", "pipeline.main", f"--config={CONFIG}",
            f"--workdir={workdir}", *BASE, *overrides]


def run(workdir, *overrides, preexec_fn=None):
    return subprocess.run(command(workdir, *overrides), cwd=ROOT, capture_output=True,
                          text=True, timeout=600, preexec_fn=preexec_fn)


def error_line(done) -> str:
    """The one line a failed run printed besides TensorFlow's logging; checks the rest."""
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [l for l in done.stderr.splitlines() if l.strip() and not LOG_LINE.match(l)]
    assert len(lines) == 1, lines
    assert lines[0].startswith("prune-pipeline: error: ")
    return lines[0]


def digests(workdir) -> dict:
    out = {}
    for name in KEPT:
        with open(os.path.join(workdir, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def no_temporaries(workdir) -> bool:
    return not [f for _, _, files in os.walk(workdir) for f in files if ".tmp" in f]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("good") / "run"
    done = run(workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return model_files(str(root / "models")), data_dirs(str(root / "data"))


@pytest.fixture
def earlier(good, tmp_path):
    """A copy of the good run's workdir and the digests of what it holds."""
    workdir = tmp_path / "run"
    shutil.copytree(good, workdir)
    return workdir, digests(workdir)


CASES = [  # id, overrides from (model paths, data dirs), words the line must hold
    ("model-missing", lambda m, d: [f"--config.model.path={m['missing']}"], "does not exist"),
    ("model-empty", lambda m, d: [f"--config.model.path={m['empty']}"], "is empty (0 bytes)"),
    ("model-truncated", lambda m, d: [f"--config.model.path={m['truncated']}"],
     "truncated, corrupt"),
    ("model-corrupt", lambda m, d: [f"--config.model.path={m['corrupt']}"], "truncated, corrupt"),
    ("model-text", lambda m, d: [f"--config.model.path={m['notes']}"], "is a text file"),
    ("model-png", lambda m, d: [f"--config.model.path={m['image']}"], "is a PNG image"),
    ("model-subclassed", lambda m, d: [f"--config.model.path={m['subclassed']}"],
     "subclassed model"),
    ("model-shared", lambda m, d: [f"--config.model.path={m['shared']}"],
     "ignore=['shared']"),
    ("model-unsupported-layer", lambda m, d: [f"--config.model.path={m['unsupported']}"],
     "register_handler(UnitNormalization"),
    ("model-no-prunable-layer", lambda m, d: [f"--config.model.path={m['no_prunable']}"],
     "has no prunable layer"),
    ("model-input-size", lambda m, d: [f"--config.model.path={m['input_size']}",
                                       "--config.model.input_size=28"],
     "takes inputs (32, 32, 3) but the data yields (28, 28, 3) (model.input_size=28"),
    ("model-classes", lambda m, d: [f"--config.model.path={m['classes']}"],
     "has 5 output classes but the data has 10"),
    ("ratio-negative", lambda m, d: ["--config.prune.ratio=-0.1"], "must be in [0.0, 1.0)"),
    ("ratio-one", lambda m, d: ["--config.prune.ratio=1.0"], "must be in [0.0, 1.0)"),
    ("unreachable-min-filters", lambda m, d: ["--config.prune.ratio=0.95",
                                              "--config.prune.min_filters=16"],
     "closest reachable is"),
    ("unreachable-ignore", lambda m, d: ["--config.prune.ratio=0.9",
                                         "--config.prune.ignore=('block*',)"], "un-ignore"),
    ("unreachable-round-to", lambda m, d: ["--config.prune.ratio=0.9",
                                           "--config.prune.round_to=32",
                                           "--config.prune.min_filters=32"],
     "asked for round_to=32; finer steps 16, 8, 4, 2, 1 were tried too"),
    ("criterion", lambda m, d: ["--config.prune.criterion=l3"],
     "'l3' is not one of: bn_gamma, fpgm, l1, l2, random, taylor"),
    ("scope", lambda m, d: ["--config.prune.scope=net"], "'net' is not one of: global, layer"),
    ("target", lambda m, d: ["--config.prune.target=flops"],
     "'flops' is not one of: filters, latency, macs"),
    ("variant", lambda m, d: ["--config.export.variants=('pruned_int4',)"],
     "'pruned_int4' is not one of: baseline_fp32"),
    ("data-missing", lambda m, d: [f"--config.data.dir={d['missing']}"],
     "pass --config.data.dir=<the folder"),
    ("data-empty", lambda m, d: [f"--config.data.dir={d['empty']}"], "lacks t10k-images"),
    ("data-unreadable", lambda m, d: [f"--config.data.dir={d['unreadable']}"],
     "replace it with an intact copy"),
    ("data-image-shape", lambda m, d: [f"--config.data.dir={d['shape']}"],
     "expected (N, height, width, 1 or 3)"),
    ("data-labels", lambda m, d: [f"--config.data.dir={d['labels']}"],
     "labels run from 0 to 11 but there are 10 classes"),
]


@pytest.mark.parametrize("overrides,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_with_one_line_and_keeps_the_earlier_run(earlier, bad, overrides,
                                                                 words):
    workdir, before = earlier
    done = run(workdir, *overrides(*bad))
    assert done.returncode == 1
    assert words in error_line(done)
    assert digests(workdir) == before
    assert no_temporaries(workdir)


def test_verbosity_one_adds_the_traceback(earlier):
    workdir, before = earlier
    done = run(workdir, "--config.model.path=/nonexistent.keras", "--verbosity=1")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "ModelFileError" in done.stderr
    assert "prune-pipeline: error: config.model.path='/nonexistent.keras'" in done.stderr
    assert digests(workdir) == before


def test_workdir_that_cannot_be_created(earlier):
    workdir, before = earlier
    done = subprocess.run(command(workdir / "report.json" / "run"), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert "cannot create workdir" in error_line(done) and "Not a directory" in done.stderr
    assert digests(workdir) == before


@contextlib.contextmanager
def read_only(directory):
    """No new files in ``directory``: chmod for a user, the immutable flag for root."""
    if os.geteuid():
        os.chmod(directory, 0o555)
        undo = lambda: os.chmod(directory, 0o755)  # noqa: E731
    else:
        made = subprocess.run(["chattr", "+i", str(directory)], capture_output=True)
        if made.returncode:
            pytest.skip(f"running as root without chattr +i: {made.stderr!r}")
        undo = lambda: subprocess.run(["chattr", "-i", str(directory)], check=True)  # noqa: E731
    try:
        yield
    finally:
        undo()


def test_workdir_that_cannot_be_written(earlier):
    workdir, before = earlier
    with read_only(workdir):
        done = run(workdir, "--config.prune.ratio=0.6")
    line = error_line(done)
    assert "cannot write in workdir" in line and "pass another --workdir" in line
    assert digests(workdir) == before


def test_disk_full_while_writing(earlier):
    workdir, before = earlier

    def small_disk():  # in the child: any write past 100 kB fails (SIGXFSZ, then EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    done = run(workdir, "--config.prune.ratio=0.6", preexec_fn=small_disk)
    assert done.returncode == 1  # not killed by SIGXFSZ
    line = error_line(done)
    assert "disk is full" in line and "File too large" in line
    assert "free space on the workdir's disk and rerun" in line
    assert digests(workdir) == before
    assert no_temporaries(workdir)


def finished_epochs(workdir) -> int:
    try:
        with open(os.path.join(workdir, "finetune", "history.csv")) as f:
            return max(0, len(f.read().splitlines()) - 1)
    except OSError:
        return 0


def stop_after_epoch(workdir, epochs: int, signum: int):
    """Runs the good command in ``workdir``; sends ``signum`` once ``epochs`` have checkpointed."""
    # A test run launched in the background by a non-interactive shell (as CI may be)
    # inherits SIGINT ignored, and Python keeps it ignored: give the child the default.
    process = subprocess.Popen(command(workdir), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 600
    try:
        # BackupAndRestore saves before CSVLogger writes its row: a row means a checkpoint.
        while finished_epochs(workdir) < epochs:
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.time() < deadline
            time.sleep(0.05)
        process.send_signal(signum)
        out, err = process.communicate(timeout=600)
    finally:
        if process.poll() is None:  # a failed wait: leave no run behind
            process.kill()
            process.wait()
    checkpoints = sorted(os.listdir(os.path.join(workdir, "finetune", "checkpoint", "chief")))
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), checkpoints


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """The good command in a new workdir: Ctrl-C after epoch 1, SIGTERM after 2, kill -9 after 3.

    Each stop is followed by the same command again; the last one finishes.
    """
    workdir = tmp_path_factory.mktemp("interrupted") / "run"
    stops = {name: stop_after_epoch(workdir, epochs, signum) for name, epochs, signum in
             (("SIGINT", 1, signal.SIGINT), ("SIGTERM", 2, signal.SIGTERM),
              ("SIGKILL", 3, signal.SIGKILL))}
    last = run(workdir)
    assert last.returncode == 0, last.stderr[-3000:]
    return workdir, stops, last


@pytest.mark.parametrize("name,status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_and_sigterm_stop_cleanly_keeping_the_checkpoint(interrupted, name, status):
    _, stops, _ = interrupted
    done, checkpoints = stops[name]
    assert done.returncode == status
    line = error_line(done)
    assert f"interrupted by {name}" in line and "rerun the same command to resume" in line
    assert "checkpoint" in checkpoints and any(c.endswith(".index") for c in checkpoints)


def test_kill9_then_rerun_resumes_and_matches_the_uninterrupted_run(interrupted, good):
    workdir, stops, last = interrupted
    killed, checkpoints = stops["SIGKILL"]
    assert killed.returncode == -signal.SIGKILL
    assert any(c.endswith(".index") for c in checkpoints)
    assert "Epoch 4/4" in last.stdout and "Epoch 1/4" not in last.stdout
    with open(os.path.join(workdir, "finetune", "history.csv")) as f:
        epochs = [int(row.split(",")[0]) for row in f.read().splitlines()[1:]]
    assert epochs == [0, 1, 2, 3]  # every run went on from the last checkpoint, none restarted
    assert no_temporaries(workdir)
    with open(workdir / "plan.json", "rb") as a, open(good / "plan.json", "rb") as b:
        assert a.read() == b.read()
    report, reference = (json.loads((w / "report.json").read_text()) for w in (workdir, good))
    # Resuming restarts the data order at the resumed epoch, so the weights differ a little.
    assert abs(report["pruned"]["accuracy"] - reference["pruned"]["accuracy"]) <= 0.05
    assert report["pruned"]["macs"] == reference["pruned"]["macs"]


def test_same_config_and_seed_give_the_same_plan_and_pruned_weights(interrupted, good):
    workdir, _, _ = interrupted
    with open(workdir / "plan.json", "rb") as a, open(good / "plan.json", "rb") as b:
        assert a.read() == b.read()
    for name in ("baseline.keras", "pruned_initial.keras"):
        ours, theirs = (tf_keras.models.load_model(w / name, compile=False).get_weights()
                        for w in (workdir, good))
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)
