"""Every config in configs/ builds, passes the config check, and loads as --config does.

The configs are discovered, so a new file is tested without being listed here.
No test trains or reads data.
"""
import glob
import importlib
import os

import pytest
from absl import flags
from ml_collections import config_flags

from configs import common
from configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(ROOT, "configs")
NAMES = sorted(os.path.splitext(os.path.basename(p))[0]
               for p in glob.glob(os.path.join(CONFIG_DIR, "*.py"))
               if os.path.basename(p) not in ("common.py", "__init__.py"))
CASES = [(name, arg) for name in NAMES
         for arg in (None, *importlib.import_module(f"configs.{name}").ARGS)]


def _module(name):
    return importlib.import_module(f"configs.{name}")


def _parse(argv):
    """``argv`` parsed as pipeline.main parses it: a locked config file with overrides."""
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True,
                                    sys_argv=argv)
    values(argv)
    return values.config


def test_the_four_configs_are_found():
    assert {"default", "mobilenetv2_folder", "resnet20_cifar10", "latency_target"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_takes_quick_and_rejects_an_unknown_arg(name):
    module = _module(name)
    assert "quick" in module.ARGS
    with pytest.raises(ValueError, match=f"configs/{name}.py takes no argument"):
        module.get_config("quik")


@pytest.mark.parametrize("name,arg", CASES)
def test_builds_and_passes_the_config_check(name, arg):
    from pipeline.run import config_check
    config = _module(name).get_config(arg)
    config_check.check(config)
    assert set(config) >= {"seed", "model", "data", "train", "prune", "finetune",
                           "sensitivity", "export", "evaluate"}


@pytest.mark.parametrize("name,arg", CASES)
def test_locked_config_refuses_an_unknown_key(name, arg):
    config = _module(name).get_config(arg)
    config.lock()
    with pytest.raises(AttributeError):
        config.no_such_key = 1
    with pytest.raises(AttributeError):
        config.prune.rato = 0.6
    config.prune.ratio = 0.6  # a known key still takes a value


@pytest.mark.parametrize("name,arg", CASES)
def test_file_loads_as_the_command_line_loads_it(name, arg):
    path = os.path.join(CONFIG_DIR, f"{name}.py") + (f":{arg}" if arg else "")
    config = _parse(["prune-pipeline", f"--config={path}", "--config.prune.ratio=0.6"])
    assert config.prune.ratio == 0.6
    assert config.to_dict().keys() == _module(name).get_config(arg).to_dict().keys()
    with pytest.raises(AttributeError, match="ratio"):
        _parse(["prune-pipeline", f"--config={path}", "--config.prune.rato=0.6"])


@pytest.mark.parametrize("name", NAMES)
def test_docstring_holds_the_commands_that_run_it(name):
    doc = _module(name).__doc__
    assert f"python -m pipeline.main --config=configs/{name}.py " in doc
    assert f"python -m pipeline.main --config=configs/{name}.py:quick " in doc


@pytest.mark.parametrize("name", NAMES)
def test_quick_trains_less_on_less_data(name):
    full, quick = _module(name).get_config(), _module(name).get_config("quick")
    assert quick.train.epochs < full.train.epochs
    assert quick.finetune.epochs < full.finetune.epochs
    for key in ("subset", "test_subset"):
        assert 0 < quick.data[key] and (full.data[key] == 0 or quick.data[key] < full.data[key])
    assert quick.model.input_size <= full.model.input_size
    assert quick.model.width <= full.model.width
    assert len(quick.sensitivity.ratios) <= len(full.sensitivity.ratios)


def test_mobilenetv2_folder_reads_your_images_at_224():
    from configs import mobilenetv2_folder
    c = mobilenetv2_folder.get_config()
    assert (c.data.name, c.data.dir, c.model.input_size, c.model.channels) == ("folder", "", 224, 3)
    assert "--config.data.dir=" in mobilenetv2_folder.__doc__
    assert c.model.name in __import__("models").names()


def test_resnet20_cifar10():
    from configs import resnet20_cifar10
    c = resnet20_cifar10.get_config()
    assert (c.model.name, c.data.name, c.model.input_size) == ("resnet20", "cifar10", 32)


def test_latency_target_takes_a_device_table():
    from configs import latency_target
    c = latency_target.get_config()
    assert (c.prune.target, c.prune.latency.table) == ("latency", "")
    assert "--config.prune.latency.table=" in latency_target.__doc__
    assert "python -m pipeline.latency.grid export" in latency_target.__doc__
    assert c.model.path == default.SHIPPED_BASELINE


def test_common_builder_rejects_an_unknown_key():
    with pytest.raises(TypeError, match="no key pth"):
        common.model(pth="")
    with pytest.raises(TypeError, match="no key modle"):
        common.config(modle=common.model())


# configs/default.py as it was before the configs were split into common.py's builders,
# with export.latency_* moved to evaluate.*: the split must not change a value (but
# model.input_size, now 0: the shipped model declares its 28x28x1 input).
TODAY = {
    "seed": 0, "deterministic": False, "distribute": "none",
    "model": {"name": "vgg", "path": default.SHIPPED_BASELINE, "input_size": 0, "channels": 0,
              "width": 1.0, "dropout": 0.3, "preprocess": "unit", "mean": (), "std": (),
              "output": "", "keras": "tf_keras"},
    "data": {"name": "fashion_mnist", "dir": "", "val_split": 0.1, "subset": 0, "test_subset": 0,
             "flip": True, "shift": 2, "memory_mb": 1024},
    "train": {"epochs": 12, "batch_size": 128, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
              "weight_decay": 5e-4, "warmup_epochs": 1.0, "label_smoothing": 0.0, "patience": 0,
              "jit_compile": False, "bn_recalibrate_batches": 50},
    "prune": {"ratio": 0.5, "target": "macs", "criterion": "l1", "scope": "global",
              "round_to": "auto", "min_filters": 1, "ignore": (),
              "latency": {"table": "", "tolerance": 0.05, "max_iterations": 4,
                          "utility": "log"}},
    # finetune: 3 epochs at lr 0.01 until 12-03
    "finetune": {"epochs": 4, "optimizer": "sgd", "lr": 0.03, "momentum": 0.9,
                 "weight_decay": 5e-4, "warmup_epochs": 0.0, "patience": 2, "distill": False,
                 "temperature": 4.0, "alpha": 0.5, "iterations": 1,
                 "bn_recalibrate_batches": 50},
    "sensitivity": {"enabled": True, "ratios": (0.1, 0.3, 0.5, 0.7, 0.9), "max_batches": 0},
    "export": {"variants": ("baseline_fp32", "pruned_fp32", "pruned_int8", "pruned_2of4",
                            "pruned_block_fc", "pruned_fp16", "pruned_dynamic_int8"),
               "int8_input": "uint8", "calibration_samples": 200, "sparse_epochs": 1,
               "sparse_steps": 0, "sparse_lr": 1e-4, "block_sparsity": 0.8,
               "verify_examples": 256, "float_rtol": 1e-4, "int8_min_agreement": 0.99,
               "metadata": {"name": "", "description": "", "version": "1",
                            "author": "keras-filter-pruning pipeline",
                            "license": "unspecified (set --config.export.metadata.license)"}},
    "evaluate": {"latency_threads": (1, 2), "latency_min_secs": 1.0},
}
TODAY_QUICK = {  # what :quick changed
    "model": {"path": "", "width": 0.75},
    "data": {"subset": 15000, "test_subset": 1000, "flip": False, "shift": 0},
    "train": {"batch_size": 64, "epochs": 2, "warmup_epochs": 0.2},
    "finetune": {"epochs": 1},
    "sensitivity": {"ratios": (0.3, 0.7), "max_batches": 4},
    "export": {"calibration_samples": 100, "sparse_steps": 10, "verify_examples": 128,
               "int8_min_agreement": 0.95},
    "evaluate": {"latency_threads": (1,), "latency_min_secs": 0.1},
}


def test_default_keeps_todays_values():
    assert default.get_config().to_dict() == TODAY
    assert os.path.isfile(default.SHIPPED_BASELINE)


def test_default_quick_keeps_todays_values():
    expected = {k: dict(v) if isinstance(v, dict) else v for k, v in TODAY.items()}
    for section, changes in TODAY_QUICK.items():
        expected[section].update(changes)
    assert default.get_config("quick").to_dict() == expected


def test_prune_ratio_takes_a_number_or_a_tuple_from_the_command_line():
    path = os.path.join(CONFIG_DIR, "default.py") + ":quick"
    assert _parse(["p", f"--config={path}", "--config.prune.ratio=0.6"]).prune.ratio == 0.6
    assert _parse(["p", f"--config={path}", "--config.prune.ratio=(0.3, 0.5)"]).prune.ratio == (
        0.3, 0.5)
    assert default.get_config().prune.ratio == 0.5  # one ratio by default
    assert default.get_config().to_dict()["prune"]["ratio"] == 0.5


@pytest.mark.parametrize("value,message", [
    ((), r"^config.prune.ratio=\(\) is empty; give one ratio \(0.5\) or several, e.g. "
         r"--config.prune.ratio='\(0.3, 0.5, 0.7\)'$"),
    ((0.3, 0.3), r"^config.prune.ratio=\(0.3, 0.3\) lists 0.3 twice; give each ratio once$"),
    ((0.3, 1.0), r"^config.prune.ratio=\(0.3, 1.0\) holds 1.0; each ratio of a tuple must be "
                 r"a number in \(0, 1\)$"),
    ((0.0, 0.5), r"holds 0.0; each ratio"),
    ((0.5, "x"), r"holds 'x'; each ratio"),
    ("(0.3,", r"^config.prune.ratio='\(0.3,' must be a number in \[0, 1\) or a tuple of them"),
    (True, r"config.prune.ratio=True must be a number"),
    (1.5, r"^config.prune.ratio=1.5 must be in \[0.0, 1.0\)$"),
])
def test_config_check_refuses_a_bad_ratio_in_one_line(value, message):
    from pipeline.run import config_check
    config = default.get_config("quick")
    config.prune.ratio = value
    with pytest.raises(config_check.ConfigError, match=message) as caught:
        config_check.check(config)
    assert "\n" not in str(caught.value)


def test_config_check_takes_a_tuple_of_ratios():
    from pipeline.run import config_check
    config = default.get_config("quick")
    config.prune.ratio = (0.3, 0.5, 0.7)
    config_check.check(config)
