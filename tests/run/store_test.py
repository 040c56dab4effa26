"""The workdir store: atomic writes, stamps and keyed scratch directories."""
import os

import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tf_keras
from pipeline.fingerprint import fingerprint
from pipeline.run.store import Store


def test_fingerprint_ignores_key_order_and_sees_values():
    assert fingerprint({"a": 1, "b": (2, 3)}) == fingerprint({"b": [2, 3], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_stamp_makes_an_artifact_fresh_for_its_key_only(tmp_path):
    store = Store(str(tmp_path))
    assert store.fresh("plan.json", "k1") is None
    store.write_text("plan.json", "{}")
    assert store.fresh("plan.json", "k1") is None  # no stamp yet: a half-done stage
    store.stamp("plan.json", "k1", {"accuracy": 0.9})
    assert store.fresh("plan.json", "k1") == {"accuracy": 0.9}
    assert store.fresh("plan.json", "k2") is None
    assert Store(str(tmp_path), restart=True).fresh("plan.json", "k1") is None
    os.remove(tmp_path / "plan.json")
    assert store.fresh("plan.json", "k1") is None


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    store = Store(str(tmp_path))
    store.write_text("a/report.json", "old")
    with pytest.raises(RuntimeError):
        with store.atomic("a/report.json") as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed")
    assert (tmp_path / "a" / "report.json").read_text() == "old"
    assert os.listdir(tmp_path / "a") == ["report.json"]


def test_save_model_atomically(tmp_path):
    model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)])
    path = Store(str(tmp_path)).save_model("m.keras", model)
    assert tf_keras.models.load_model(path).count_params() == 8
    assert os.listdir(tmp_path) == ["m.keras"]


def test_scratch_keeps_checkpoints_of_the_same_key_only(tmp_path):
    store = Store(str(tmp_path))
    directory = store.scratch("baseline", "k1")
    open(os.path.join(directory, "ckpt"), "w").close()
    assert os.path.exists(os.path.join(store.scratch("baseline", "k1"), "ckpt"))
    assert not os.path.exists(os.path.join(store.scratch("baseline", "k2"), "ckpt"))
    open(os.path.join(directory, "ckpt"), "w").close()
    assert not os.path.exists(
        os.path.join(Store(str(tmp_path), restart=True).scratch("baseline", "k2"), "ckpt"))
