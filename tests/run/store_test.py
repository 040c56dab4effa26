"""The workdir store: atomic writes, stamps and keyed scratch directories."""
import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Counted:
    value: int
    seconds: float = 0.0


def counting(calls, value=7):
    def compute():
        calls.append(value)
        return f"made {value}", Counted(value)
    return compute


def test_cached_computes_saves_and_stamps_once(tmp_path):
    store, calls = Store(str(tmp_path)), []
    save = lambda name, text: store.write_text(name, text)  # noqa: E731
    load = lambda name: (tmp_path / name).read_text()  # noqa: E731
    first = store.cached("a.txt", "k1", counting(calls), Counted, save=save, load=load)
    assert (first.value, first.record, first.reused) == ("made 7", Counted(7), False)
    assert (tmp_path / "a.txt").read_text() == "made 7"
    assert store.fresh("a.txt", "k1") == {"value": 7, "seconds": 0.0}  # asdict on disk
    again = store.cached("a.txt", "k1", counting(calls), Counted, save=save, load=load)
    assert (again.value, again.record, again.reused) == ("made 7", Counted(7), True)
    assert calls == [7]  # the second call skipped the compute


def test_cached_recomputes_on_a_changed_key_or_restart(tmp_path):
    store, calls = Store(str(tmp_path)), []
    save = lambda name, text: store.write_text(name, text)  # noqa: E731
    store.cached("a.txt", "k1", counting(calls, 1), Counted, save=save)
    changed = store.cached("a.txt", "k2", counting(calls, 2), Counted, save=save)
    assert not changed.reused and changed.record == Counted(2)
    assert (tmp_path / "a.txt").read_text() == "made 2"
    Store(str(tmp_path), restart=True).cached("a.txt", "k2", counting(calls, 3), Counted,
                                              save=save)
    assert calls == [1, 2, 3]


def test_cached_needs_its_companions_and_a_record_that_fits(tmp_path):
    store, calls = Store(str(tmp_path)), []
    save = lambda name, text: store.write_text(name, text)  # noqa: E731
    store.cached("a.txt", "k", counting(calls), Counted, save=save, needs=("b.txt",))
    assert not store.cached("a.txt", "k", counting(calls), Counted, save=save,
                            needs=("b.txt",)).reused  # b.txt was never written
    store.write_text("b.txt", "")
    assert store.cached("a.txt", "k", counting(calls), Counted, needs=("b.txt",)).reused
    store.stamp("a.txt", "k", {"seconds": 1.0})  # another version's record: no "value"
    assert not store.cached("a.txt", "k", counting(calls), Counted, save=save).reused
    assert len(calls) == 3


def test_cached_without_save_expects_compute_to_write(tmp_path):
    store = Store(str(tmp_path))

    def compute():
        store.write_text("c.bin", "x")
        return None, Counted(1)
    assert not store.cached("c.bin", "k", compute, Counted).reused
    assert store.cached("c.bin", "k", compute, Counted).value is None  # no load: no value


def test_json_round_trip_is_sorted_and_indented(tmp_path):
    store = Store(str(tmp_path))
    store.write_json("r.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "r.json").read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}\n'
    assert store.read_json("r.json") == {"a": [1, 2], "b": 1}
