"""A non-chief worker's store: private writes, the chief's stamps, the chief's checkpoints."""
import dataclasses
import os

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
from pipeline.run import worker_store
from pipeline.run.store import Store
from pipeline.training.distribute import Cluster

CHIEF = Cluster("multi_worker", None, "worker", 0, 2)
WORKER = Cluster("multi_worker", None, "worker", 1, 2)


@dataclasses.dataclass(frozen=True)
class Record:
    accuracy: float


def test_the_chief_writes_the_workdir_itself(tmp_path):
    store = worker_store.open_store(CHIEF, str(tmp_path))
    assert type(store) is Store and store.workdir == str(tmp_path)
    assert worker_store.private_dir(CHIEF, str(tmp_path)) == str(tmp_path)
    worker_store.finish(CHIEF, store)
    assert tmp_path.exists()


def test_a_worker_follows_the_chiefs_stamps_and_writes_privately(tmp_path):
    chief = Store(str(tmp_path / "w"))
    chief.write_text("a.txt", "chief's")
    chief.stamp("a.txt", "k", {"accuracy": 0.5})
    store = worker_store.open_store(WORKER, str(tmp_path / "w"))
    assert store.workdir == worker_store.private_dir(WORKER, str(tmp_path / "w"))
    assert store.workdir != chief.workdir
    made = store.cached("a.txt", "k", lambda: 1 / 0, Record,
                        load=lambda name: open(store.path(name)).read())
    assert made.reused and made.record == Record(0.5)  # the chief's stamp, no compute
    assert made.value == "chief's"  # copied in for the stage to load
    store.write_text("b.txt", "mine")
    assert not os.path.exists(chief.path("b.txt"))
    assert store.scratch("finetune", "k") == chief.path("finetune")  # the chief's backups
    worker_store.finish(WORKER, store)
    assert not os.path.exists(store.workdir) and os.path.exists(chief.path("a.txt"))


def test_the_private_dir_is_the_same_after_a_restart(tmp_path):
    first = worker_store.private_dir(WORKER, str(tmp_path / "w"))
    assert worker_store.private_dir(WORKER, str(tmp_path / "w")) == first
    assert worker_store.private_dir(WORKER, str(tmp_path / "v")) != first
