"""Bad inputs through the Python API: each raises its own error type before any stage runs.

``run_pipeline`` is called in-process on the quick config with a small fake
Fashion-MNIST folder; every case must fail in the preflight (no training, no
artifact written, an earlier ``report.json`` untouched). The command line's
side of the same matrix is in ``reliability_test.py``.
"""
import errno
import os
import signal

import pytest

import pipeline
import tensorflow as tf
import tf_keras
from bad_inputs import data_dirs, model_files
from declared_inputs import image_folder, narrow_model, save_h5
from configs import default
from pipeline.run import signals as guard
from pipeline.run import model_file, preflight, stages
from pipeline.run.config_check import ConfigError
from pipeline.data.loaders import DataError
from pipeline.errors import (ModelFileError, RegistryError, TargetError, UnsupportedLayerError,
                             UnsupportedModelError, WorkdirError)
from pipeline.main import run_pipeline

MODEL_CASES = [  # model.path case, error type, words of the message
    ("missing", ModelFileError, "does not exist"),
    ("empty", ModelFileError, r"is empty \(0 bytes\)"),
    ("truncated", ModelFileError, "truncated, corrupt"),
    ("corrupt", ModelFileError, "truncated, corrupt"),
    ("notes", ModelFileError, "is a text file, not a Keras model"),
    ("image", ModelFileError, "is a PNG image, not a Keras model"),
    ("keras3_newer", ModelFileError, r"saved by Keras 3\.99\.0, newer than the installed Keras "
     r"3\.\d+\.\d+: install keras>=3\.99\.0"),
    ("subclassed", UnsupportedModelError, "subclassed model"),
    ("shared", UnsupportedModelError, "'shared' .* is shared"),
    ("unsupported", UnsupportedLayerError, "'unitnorm' .*register_handler"),
    ("no_prunable", UnsupportedModelError, "has no prunable layer"),
    ("classes", DataError, "has 5 output classes but the data has 10"),
]
CONFIG_CASES = [  # overrides, error type, words of the message
    ({"prune.ratio": -0.1}, ConfigError, r"prune.ratio=-0.1 must be in \[0.0, 1.0\)"),
    ({"prune.ratio": 1.0}, ConfigError, r"prune.ratio=1.0 must be in \[0.0, 1.0\)"),
    ({"prune.ratio": 0.95, "prune.min_filters": 16}, TargetError,
     "cannot remove 95.0% of macs: the closest reachable is"),
    ({"prune.ratio": 0.9, "prune.ignore": ("block*",)}, TargetError, "un-ignore layers"),
    # A finer alignment reaches 90% (at round_to=16); 32 filters a layer reach none.
    ({"prune.ratio": 0.9, "prune.round_to": 32, "prune.min_filters": 32}, TargetError,
     "asked for round_to=32; finer steps 16, 8, 4, 2, 1 were tried too"),
    ({"prune.criterion": "l3"}, ConfigError, "'l3' is not one of: bn_gamma, fpgm, l1, l2"),
    ({"prune.scope": "net"}, ConfigError, "'net' is not one of: global, layer"),
    ({"prune.target": "flops"}, ConfigError, "'flops' is not one of: filters, latency, macs"),
    ({"evaluate.latency_threads": (1, 0)}, ConfigError,
     r"evaluate.latency_threads=0 must be >= 1"),
    ({"evaluate.latency_min_secs": -1.0}, ConfigError, "evaluate.latency_min_secs=-1.0 must be"),
    ({"prune.round_to": 0}, ConfigError, "prune.round_to=0 must be >= 1"),
    ({"prune.round_to": "fast"}, ConfigError,
     "config.prune.round_to='fast' must be 'auto' or an integer >= 1"),
    ({"data.memory_mb": -1}, ConfigError, "data.memory_mb=-1 must be >= 0"),
    ({"export.variants": ("pruned_int4",)}, ConfigError,
     "'pruned_int4' is not one of: baseline_fp32, .*pruned_int8"),
]
DATA_CASES = [  # data.dir case, words of the DataError
    ("missing", "lacks t10k-images"),
    ("empty", "lacks t10k-images"),
    ("unreadable", "cannot read .*train-images.*replace it with an intact copy"),
    ("shape", r"train images have shape \(200, 28, 28, 3, 1\)"),
    ("flat", r"train images have shape \(200, 784, 1\)"),
    ("labels", "train labels run from 0 to 11 but there are 10 classes"),
]


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return model_files(str(root / "models")), data_dirs(str(root / "data"))


@pytest.fixture
def workdir(tmp_path):
    """A workdir holding an earlier run's report, which no failing run may touch."""
    (tmp_path / "report.json").write_text('{"good": true}\n')
    return tmp_path


def quick_config(data_dir, **overrides):
    config = default.get_config("quick")
    config.data.dir = data_dir
    for key, value in overrides.items():
        if "." in key:
            section, name = key.split(".")
            config[section][name] = value
        else:
            config[key] = value
    return config


def fails_cleanly(config, workdir, error, match):
    with pytest.raises(error, match=match):
        run_pipeline(config, str(workdir))
    assert sorted(os.listdir(workdir)) == ["report.json"]  # not even config.json
    assert (workdir / "report.json").read_text() == '{"good": true}\n'


@pytest.mark.parametrize("case,error,match", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_bad_model_path(bad, workdir, case, error, match):
    models, data = bad
    fails_cleanly(quick_config(data["ok"], **{"model.path": models[case]}), workdir, error,
                  match)


def test_override_that_contradicts_the_model_fails(bad, workdir):
    models, data = bad  # a 32x32x3 model: channels come from it, the size is overridden
    config = quick_config(data["ok"], **{"model.path": models["input_size"],
                                         "model.input_size": 28})
    fails_cleanly(config, workdir, DataError,
                  r"takes inputs \(32, 32, 3\) but the data yields \(28, 28, 3\) "
                  r"\(model.input_size=28, model.channels=0\); set them to 0")


@pytest.fixture(scope="module")
def declared(tmp_path_factory):
    """A 64x64x1, 7-class .h5 (8-32 channels), a 5-class one, 32x32 RGB images in 7 folders."""
    root = tmp_path_factory.mktemp("declared")
    return {"model": save_h5(narrow_model(), root / "outside.h5"),
            "five": save_h5(narrow_model(classes=5), root / "five.h5"),
            "images": image_folder(root / "images")}


class _Stop(Exception):
    pass


def test_model_file_declares_the_data_input(declared, tmp_path, monkeypatch):
    seen = {}

    def baseline(model_section, train_section, data, store, **keywords):
        seen.update(shape=data.datasets.input_shape, classes=data.datasets.num_classes,
                    loaded=keywords["loaded"])
        raise _Stop  # the preflight passed: no need to train

    monkeypatch.setattr(stages, "baseline", baseline)
    config = quick_config(declared["images"], **{"model.path": declared["model"],
                                                 "data.name": "folder", "train.batch_size": 8})
    assert (config.model.input_size, config.model.channels, config.prune.round_to) == (0, 0,
                                                                                       "auto")
    with pytest.raises(_Stop):
        run_pipeline(config, str(tmp_path / "run"))
    assert seen["shape"] == (64, 64, 1) and seen["classes"] == 7
    # Loaded once, by the preflight, and handed on to the baseline stage.
    assert seen["loaded"].input_shape == (None, 64, 64, 1)


def test_run_loads_the_data_with_the_model_preprocessing(declared, tmp_path, monkeypatch):
    seen = {}

    def baseline(model_section, train_section, data, store, **keywords):
        seen["preprocess"] = data.datasets.preprocess
        images, _ = next(iter(data.datasets.test))
        seen["low"] = float(tf.reduce_min(images))
        raise _Stop

    monkeypatch.setattr(stages, "baseline", baseline)
    config = quick_config(declared["images"], **{"model.path": declared["model"],
                                                 "data.name": "folder", "train.batch_size": 8,
                                                 "model.preprocess": "symmetric"})
    with pytest.raises(_Stop):
        run_pipeline(config, str(tmp_path / "run"))
    assert not seen["preprocess"].is_unit
    assert seen["low"] < 0  # [-1, 1], not [0, 1]


def test_preflight_reaches_what_a_finer_alignment_reaches(declared):
    # The library is exact: round_to=16 cannot remove half of this model's MACs...
    model = model_file.load(declared["model"])
    with pytest.raises(TargetError, match="cannot remove 50.0% of macs.*round_to=16"):
        pipeline.plan_pruning(model, 0.5, round_to=16)
    # ...so the run's dry run settles on a finer step instead of refusing the run.
    config = quick_config(declared["images"], **{"model.path": declared["model"],
                                                 "data.name": "folder", "train.batch_size": 8,
                                                 "prune.round_to": 16})
    datasets = stages.load_data(config.data, input_size=64, channels=1, batch_size=8,
                                seed=0).datasets
    preflight.check_model(config, datasets, model)  # no TargetError


def test_class_count_mismatch_fails_up_front(declared, workdir):
    config = quick_config(declared["images"], **{"model.path": declared["five"],
                                                 "data.name": "folder", "train.batch_size": 8})
    fails_cleanly(config, workdir, DataError,
                  "five.h5 has 5 output classes but the data has 7 "
                  r"\(class_0, class_1, class_2, class_3, class_4...\)")


@pytest.mark.parametrize("overrides,error,match", CONFIG_CASES,
                         ids=[str(c[0]) for c in CONFIG_CASES])
def test_bad_prune_settings(bad, workdir, overrides, error, match):
    fails_cleanly(quick_config(bad[1]["ok"], **overrides), workdir, error, match)


@pytest.mark.parametrize("case,match", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_dir(bad, workdir, case, match):
    fails_cleanly(quick_config(bad[1][case]), workdir, DataError, match)


def test_workdir_that_cannot_be_created(bad, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(WorkdirError, match="cannot create workdir .*a_file/run"):
        run_pipeline(quick_config(bad[1]["ok"]), str(blocker / "run"))


def test_good_model_file_loads(bad):
    model = model_file.load(bad[0]["good"])
    assert model.output_shape == (None, 10)


def test_library_names_the_valid_choices():
    x = inp = tf_keras.Input((8, 8, 3))
    x = tf_keras.layers.Conv2D(8, 3, name="c")(x)
    net = tf_keras.Model(inp, tf_keras.layers.Conv2D(2, 1, name="head")(x))
    with pytest.raises(RegistryError, match="l3.*l1"):
        pipeline.prune(net, 0.5, criterion="l3")
    with pytest.raises(TargetError, match="unknown scope 'net'; choose one of: .*global"):
        pipeline.prune(net, 0.5, scope="net")
    with pytest.raises(TargetError, match="unknown target 'flops'; choose one of: .*macs"):
        pipeline.prune(net, 0.5, target="flops")
    for ratio in (-0.1, 1.0):
        with pytest.raises(TargetError, match=r"must be in \[0, 1\)"):
            pipeline.prune(net, ratio)


def test_disk_full_becomes_one_error_naming_the_file():
    @guard.disk_errors()
    def write():
        raise OSError(errno.EFBIG, "File too large", "/w/pruned.keras")

    with pytest.raises(guard.DiskFullError, match="disk is full .*writing /w/pruned.keras"):
        write()

    @guard.disk_errors()
    def checkpoint():  # TensorFlow's writer wraps ENOSPC in its own error, chained
        try:
            raise tf.errors.UnknownError(None, None, "No space left on device")
        except tf.errors.UnknownError as e:
            raise RuntimeError("save failed") from e

    with pytest.raises(guard.DiskFullError, match="free space on the workdir's disk"):
        checkpoint()

    @guard.disk_errors()
    def other():
        raise OSError(errno.ENOENT, "No such file or directory")

    with pytest.raises(FileNotFoundError):  # not a disk problem: left alone
        other()


def test_interrupts_exit_with_the_signal_status():
    assert guard.exit_status(guard.Interrupted(signal.SIGTERM)) == 143
    assert guard.exit_status(KeyboardInterrupt()) == 130
    assert guard.exit_status(ConfigError("x")) == 1


def test_a_keras3_file_loads_as_the_keras3_model_it_is(bad, tmp_path):
    """Recognised from the file's own metadata (.keras archive and Keras 3 .h5 alike)."""
    import keras
    from pipeline import keras_api
    model = model_file.load(bad[0]["keras3"])
    assert keras_api.is_keras3(model) and keras_api.describe(model) == f"Keras {keras.__version__}"
    h5 = str(tmp_path / "keras3.h5")
    model.save(h5)
    assert keras_api.file_package(h5) == "keras" and keras_api.is_keras3(model_file.load(h5))
    legacy = str(tmp_path / "legacy.h5")
    tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)]).save(legacy)
    assert keras_api.file_package(legacy) == "tf_keras"
    assert not keras_api.is_keras3(model_file.load(legacy))


@pytest.mark.parametrize("keras3", ["file", "built"])
def test_multi_worker_with_a_keras3_model_is_refused_up_front(bad, workdir, keras3):
    """Keras 3's fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585)."""
    models, data = bad
    overrides = ({"model.path": models["keras3"]} if keras3 == "file"
                 else {"model.path": "", "model.keras": "keras"})
    fails_cleanly(quick_config(data["ok"], distribute="multi_worker", **overrides), workdir,
                  ConfigError, r"config.distribute='multi_worker' cannot train Keras 3 models "
                  r"and .*keras-team/keras#20585\); use distribute='mirrored'")
