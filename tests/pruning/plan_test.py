"""pipeline.pruning.plan: the plan as data: its summary, its JSON, and the checks on replay.

Replaying a plan from JSON on every supported pattern is
tests/pruning/equivalence_test.py; determinism through ``pipeline.prune`` is
tests/api_test.py. Here the plan made from a known selection.
"""
import dataclasses
import json

import numpy as np
import pytest
import tf_keras

import pipeline
from pipeline.pruning import plan as plans

L = tf_keras.layers
SETTINGS = {"ratio": 0.25, "target": "filters"}


def tiny(c1=8, c2=16):
    x = inputs = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(c1, 3, padding="same", name="c1")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(c2, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return tf_keras.Model(inputs, L.Dense(3, name="head")(x), name="tiny")


@pytest.fixture(scope="module")
def plan():
    """c1 keeps channels 0, 2, 4, 6 of 8; c2 is not named, so it keeps all 16."""
    analysis = pipeline.analyse(tiny())
    return plans.make_plan(analysis, {"c1": np.array([0, 2, 4, 6])}, SETTINGS,
                           {"filters": 4 / 24, "macs": 0.123456789})


def test_groups_record_what_is_kept(plan):
    assert plan.model == "tiny" and plan.settings == SETTINGS and plan.report is None
    assert [(g.name, g.producers, g.size, g.keep) for g in plan.groups] == [
        ("c1", ("c1",), 8, (0, 2, 4, 6)), ("c2", ("c2",), 16, tuple(range(16)))]
    kept = plan.kept()
    assert kept["c1"].dtype == np.int64 and list(kept["c1"]) == [0, 2, 4, 6]


def test_the_summary_counts_each_layer_before_and_after(plan):
    rows = {l.name: l for l in plan.layers}
    assert list(rows) == ["c1", "bn", "c2", "head"]  # layers with weights or MACs
    c1, bn, c2, head = rows.values()
    assert (c1.class_name, c1.channels_before, c1.channels_after) == ("Conv2D", 8, 4)
    assert (c1.macs_before, c1.macs_after) == (8 * 8 * 9 * 3 * 8, 8 * 8 * 9 * 3 * 4)
    assert (c1.params_before, c1.params_after) == (9 * 3 * 8 + 8, 9 * 3 * 4 + 4)
    assert (bn.channels_after, bn.params_before, bn.params_after) == (4, 32, 16)
    assert (c2.channels_before, c2.channels_after) == (16, 16)
    assert (c2.macs_after, c2.params_after) == (6 * 6 * 9 * 4 * 16, 9 * 4 * 16 + 16)
    assert (head.macs_after, head.params_after) == (16 * 3, 16 * 3 + 3)
    assert plan.macs_before == sum(l.macs_before for l in plan.layers) == pipeline.count_macs(
        tiny())
    assert plan.params_before == tiny().count_params()
    assert plan.params_after == tiny(c1=4).count_params()
    assert plan.macs_after == pipeline.count_macs(tiny(c1=4))


def test_a_plan_round_trips_through_json(plan):
    text = plan.to_json()
    body = json.loads(text)
    assert body["format"] == plans.FORMAT_VERSION and "report" not in body
    assert body["removed"] == {"filters": round(4 / 24, 6), "macs": 0.123457}
    again = pipeline.PrunePlan.from_json(text)
    assert again.to_json() == text
    assert (again.model, again.groups, again.settings, again.layers) == (
        plan.model, plan.groups, plan.settings, plan.layers)


def test_a_measured_report_travels_with_the_plan():
    analysis = pipeline.analyse(tiny())
    report = {"device": "phone", "budget_ms": 1.5, "rounds": [{"predicted_ms": 1.4}]}
    plan = plans.make_plan(analysis, {}, SETTINGS, {"filters": 0.0}, report)
    again = pipeline.PrunePlan.from_json(plan.to_json())
    assert again.report == report and again.settings == SETTINGS


def test_the_summary_table_has_a_row_per_layer_and_the_totals(plan):
    lines = plan.summary_table().splitlines()
    assert lines[0].split() == ["layer", "class", "channels", "MACs", "params"]
    c1 = next(line for line in lines if line.startswith("c1 "))
    assert "8->4" in c1 and "13.82k->6.91k" in c1
    assert lines[-2].startswith("total")
    assert lines[-1] == (f"removed: 12.3% of MACs, 16.7% of prunable filters, "
                         f"{1 - plan.params_after / plan.params_before:.1%} of params")


@pytest.mark.parametrize("text, message", [
    ("not json", "not a pruning plan"),
    (json.dumps({"format": 2}), "plan format 2 is not 1; re-create the plan"),
    (json.dumps({"format": 1, "model": "m"}), "not a pruning plan"),
])
def test_unreadable_plans_are_refused(text, message):
    with pytest.raises(pipeline.PlanError, match=message):
        pipeline.PrunePlan.from_json(text)


def test_check_fits_names_missing_and_resized_groups(plan):
    with pytest.raises(pipeline.PlanError, match=r"groups missing \[\], unexpected \[\], "
                       r"resized \['c1'\]"):
        plans.check_fits(plan, pipeline.analyse(tiny(c1=10)))
    plans.check_fits(plan, pipeline.analyse(tiny()))  # the model it was made from


@pytest.mark.parametrize("keep, message", [((0, 8), "keeps invalid indices \\(size 8\\)"),
                                           ((1, 1), "keeps invalid indices"),
                                           ((), "keeps no channel")])
def test_check_fits_refuses_bad_indices(plan, keep, message):
    bad = dataclasses.replace(plan, groups=(dataclasses.replace(plan.groups[0], keep=keep),
                                            plan.groups[1]))
    with pytest.raises(pipeline.PlanError, match=f"plan group 'c1' {message}"):
        plans.check_fits(bad, pipeline.analyse(tiny()))


def test_what_auto_resolved_to_travels_with_the_plan():
    analysis = pipeline.analyse(tiny())
    alignment = {"round_to": "auto", "level": 0, "steps": {"c1": 4, "c2": 8},
                 "summary": "8 (1 group), 4 (1 group)"}
    plan = plans.make_plan(analysis, {}, dict(SETTINGS, round_to="auto"), {"filters": 0.0},
                           alignment=alignment)
    again = pipeline.PrunePlan.from_json(plan.to_json())
    assert again.alignment == alignment and again.settings["round_to"] == "auto"
