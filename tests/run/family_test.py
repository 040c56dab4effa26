"""The family run's config handling and member stores (no model trained; the whole run is
tested end to end in tests/integration/main_test.py)."""
import os

from configs import default
from pipeline.run import family
from pipeline.run.store import MemberStore, Store


def test_a_tuple_is_a_family_and_a_float_is_not():
    config = default.get_config("quick")
    assert family.ratios(config.prune) is None
    assert family.checked(config) is config
    config.prune.ratio = (0.7, 0.3)
    assert family.ratios(config.prune) == (0.7, 0.3)  # in the order given


def test_each_member_is_a_copy_with_one_ratio():
    config = default.get_config("quick")
    config.prune.ratio = (0.7, 0.3)
    config.lock()
    member = family.for_ratio(config, 0.3)
    assert member.prune.ratio == 0.3 and isinstance(member.prune.ratio, float)
    assert config.prune.ratio == (0.7, 0.3)  # unchanged
    assert member.to_dict() == {**config.to_dict(), "prune": {**config.to_dict()["prune"],
                                                              "ratio": 0.3}}
    assert family.checked(config).prune.ratio == 0.3  # the preflight checks the smallest


def test_a_member_store_writes_in_its_folder_and_shares_the_latency_tables(tmp_path):
    store = Store(str(tmp_path))
    member = MemberStore(store, "ratio_0.50", shared=family.SHARED)
    assert member.workdir == str(tmp_path / "ratio_0.50")
    member.write_text("plan.json", "{}")
    member.stamp("plan.json", "k1")
    assert (tmp_path / "ratio_0.50" / "plan.json").read_text() == "{}"
    assert member.fresh("plan.json", "k1") == {} and member.fresh("plan.json", "k2") is None
    assert store.fresh("plan.json", "k1") is None  # not the parent's plan
    assert member.path("latency_tables") == str(tmp_path / "latency_tables")
    scratch = member.scratch("finetune", "k1")
    assert scratch == str(tmp_path / "ratio_0.50" / "finetune") and os.path.isdir(scratch)
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob("ratio_0.50/.*"))
