"""pipeline.pruning.selection: which channels go, from given scores and constraints.

Scores are written by hand here (no criterion), so the expected kept
indices follow from the rules: lowest scores first, groups compared on
scores divided by their mean, min_filters and round_to respected.
"""
import numpy as np
import pytest
import tf_keras

import pipeline
from declared_inputs import narrow_model
from pipeline.pruning import lanes, selection
from pipeline.pruning.selection import Constraints

L = tf_keras.layers


@pytest.fixture(scope="module")
def analysis():
    """c1: 8 channels, c2: 16 channels (Input(8,8,3) -> c1 -> BN -> ReLU -> c2 -> GAP -> Dense)."""
    x = inputs = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(16, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return pipeline.analyse(tf_keras.Model(inputs, L.Dense(3, name="head")(x)))


def kept(chosen):
    return {name: list(indices) for name, indices in chosen.kept.items()}


def ramp(analysis):
    """Channel i of every group scores i + 1: the first channels are the least important."""
    return {g.name: np.arange(1.0, g.size + 1) for g in analysis.groups}


def test_layer_scope_removes_the_lowest_scores_of_every_group(analysis):
    scores = ramp(analysis)
    scores["c1"] = scores["c1"][::-1].copy()  # c1's last channels are its weakest
    chosen = selection.select(analysis, scores, 0.5, "filters", "layer", Constraints())
    assert kept(chosen) == {"c1": [0, 1, 2, 3], "c2": list(range(8, 16))}
    assert chosen.removed["filters"] == pytest.approx(0.5)


def test_global_scope_compares_scores_relative_to_their_group(analysis):
    # c1's scores are 100x c2's, but c1 holds four weak channels relative to its own mean.
    scores = {"c1": 100 * np.r_[np.full(4, 0.1), np.full(4, 1.9)], "c2": np.ones(16)}
    chosen = selection.select(analysis, scores, 4 / 24, "filters", "global", Constraints())
    assert kept(chosen) == {"c1": [4, 5, 6, 7], "c2": list(range(16))}


def test_half_the_filters_within_rounding(analysis):
    for scope in ("layer", "global"):
        chosen = selection.select(analysis, ramp(analysis), 0.5, "filters", scope, Constraints())
        removed = sum(g.size - len(chosen.kept[g.name]) for g in analysis.groups)
        assert abs(removed / 24 - 0.5) <= selection.TOLERANCE
        assert chosen.removed["filters"] == pytest.approx(removed / 24)


def test_macs_target_measures_what_it_removes(analysis):
    chosen = selection.select(analysis, ramp(analysis), 0.4, "macs", "global", Constraints())
    assert abs(chosen.removed["macs"] - 0.4) <= selection.TOLERANCE
    n1, n2 = len(chosen.kept["c1"]), len(chosen.kept["c2"])
    full = 8 * 8 * 9 * 3 * 8 + 6 * 6 * 9 * 8 * 16 + 16 * 3
    after = 8 * 8 * 9 * 3 * n1 + 6 * 6 * 9 * n1 * n2 + n2 * 3
    assert chosen.removed["macs"] == pytest.approx(1 - after / full)


def test_min_filters_shortens_each_removal_sequence(analysis):
    plan = selection.planner(analysis, ramp(analysis), Constraints(min_filters=6))
    assert [len(s) for s in plan.sequences] == [2, 10]
    np.testing.assert_array_equal(plan.sequences[0], [0, 1])  # ascending score
    chosen = selection.select(analysis, ramp(analysis), 0.3, "filters", "global",
                              Constraints(min_filters=6))
    assert len(chosen.kept["c1"]) >= 6 and len(chosen.kept["c2"]) >= 6


def test_round_to_keeps_multiples(analysis):
    for ratio in (0.17, 0.33, 0.5):  # steps of 4 channels of 24: 1/6, 1/3, 1/2
        chosen = selection.select(analysis, ramp(analysis), ratio, "filters", "global",
                                  Constraints(round_to=4))
        for name, indices in chosen.kept.items():
            assert len(indices) % 4 == 0, (ratio, name, len(indices))


def test_per_layer_ratios_are_fixed_outside_the_ranking(analysis):
    chosen = selection.select_fixed(analysis, ramp(analysis), Constraints(ratios=(("c2", 0.75),)))
    assert kept(chosen) == {"c1": list(range(8)), "c2": [12, 13, 14, 15]}
    assert chosen.removed["filters"] == pytest.approx(12 / 24)
    glob = selection.select(analysis, ramp(analysis), 0.3, "filters", "global",
                            Constraints(ratios=(("c*2", 0.25),)))
    assert len(glob.kept["c2"]) == 12  # the pattern's share, whatever the global ratio
    assert len(glob.kept["c1"]) == 5  # the rest of 30% of 24 channels comes from c1


def test_normalise_divides_by_the_mean():
    np.testing.assert_allclose(selection.normalise([1.0, 3.0]), [0.5, 1.5])
    np.testing.assert_array_equal(selection.normalise([0.0, 0.0]), [0.0, 0.0])
    assert selection.normalise([]).size == 0


@pytest.mark.parametrize("constraints, message", [
    (dict(min_filters=0), "min_filters must be >= 1, got 0"),
    (dict(round_to=0), "round_to must be >= 1, got 0"),
    (dict(ratios=(("c1", 1.0),)), "per-layer ratio for 'c1' must be in \\[0, 1\\), got 1.0"),
])
def test_constraints_refuse_bad_values(constraints, message):
    with pytest.raises(pipeline.TargetError, match=message):
        Constraints(**constraints)


def test_select_refuses_a_bad_ratio_or_scope(analysis):
    with pytest.raises(pipeline.TargetError, match="must be in \\[0, 1\\)"):
        selection.select(analysis, ramp(analysis), 1.0, "filters", "global", Constraints())
    with pytest.raises(pipeline.TargetError, match="unknown scope 'world'"):
        selection.select(analysis, ramp(analysis), 0.5, "filters", "world", Constraints())


def test_the_planner_maps_counts_to_kept_indices_and_a_mask(analysis):
    plan = selection.planner(analysis, ramp(analysis), Constraints())
    counts = np.array([3, 5])
    assert {k: list(v) for k, v in plan.kept(counts).items()} == {
        "c1": list(range(3, 8)), "c2": list(range(5, 16))}
    keep = plan.keep_mask(counts)
    assert int((~keep).sum()) == 8
    np.testing.assert_array_equal(keep, analysis.keep_mask(plan.kept(counts)))
    assert plan.filters_removed(counts) == pytest.approx(8 / 24)


# ---------------------------------------------------------------- round_to="auto"

def _chain(widths):
    return narrow_model(widths=widths)


def _scores(analysis, seed=1):
    rng = np.random.default_rng(seed)
    return {g.name: rng.uniform(0.1, 1, g.size) for g in analysis.groups}


@pytest.fixture(scope="module")
def mixed():
    """Groups of 8, 24, 40, 64 and 100 channels, random scores."""
    analysis = pipeline.analyse(_chain((8, 24, 40, 64, 100)))
    return analysis, _scores(analysis)


@pytest.mark.parametrize("round_to, scope, target, ratio, widths", [
    (8, "global", "macs", 0.5, (8, 16, 32, 24, 56)),
    (16, "global", "macs", 0.5, (8, 16, 32, 32, 48)),
    (16, "layer", "filters", 0.4, (8, 24, 32, 32, 48)),
    (3, "layer", "macs", 0.3, (6, 21, 33, 54, 78)),
    (1, "global", "macs", 0.5, (6, 16, 28, 46, 69)),
    (32, "layer", "macs", 0.3, (8, 24, 32, 32, 64)),  # no 16 for 32: that is auto's alone
])
def test_integer_round_to_selects_as_before_auto(mixed, round_to, scope, target, ratio, widths):
    # Kept widths recorded from the selection before round_to="auto" existed.
    analysis, scores = mixed
    chosen = selection.select(analysis, scores, ratio, target, scope, Constraints(round_to=round_to))
    assert tuple(len(chosen.kept[f"conv{i}"]) for i in range(5)) == widths
    assert chosen.alignment is None


def test_auto_keeps_each_group_on_the_rule_of_its_width(mixed):
    analysis, scores = mixed
    chosen = selection.select(analysis, scores, 0.5, "macs", "global", Constraints(round_to="auto"))
    steps = {f"conv{i}": s for i, s in enumerate((4, 8, 16, 32, 32))}
    assert chosen.alignment["steps"] == steps and chosen.alignment["level"] == 0
    for group in analysis.groups:
        kept = len(chosen.kept[group.name])
        assert kept in lanes.ladder(group.size, steps[group.name]), (group.name, kept)
    assert abs(chosen.removed["macs"] - 0.5) <= selection.TOLERANCE


def test_auto_reaches_half_the_macs_of_a_small_model_where_16_cannot():
    analysis = pipeline.analyse(_chain((8, 16, 32, 64, 32)))
    scores = _scores(analysis)
    with pytest.raises(pipeline.TargetError, match="closest reachable"):
        selection.select(analysis, scores, 0.5, "macs", "global", Constraints(round_to=16))
    chosen = selection.select(analysis, scores, 0.5, "macs", "global", Constraints(round_to="auto"))
    assert abs(chosen.removed["macs"] - 0.5) <= selection.TOLERANCE
    assert chosen.alignment["level"] == 0  # the rule's own steps were enough


def test_auto_takes_finer_steps_only_when_the_rule_cannot_reach():
    analysis = pipeline.analyse(_chain((8, 8, 8)))  # steps of 4: keep 4 or 8 of each
    scores = _scores(analysis)
    chosen = selection.select(analysis, scores, 0.3, "filters", "global",
                              Constraints(round_to="auto"))
    assert chosen.alignment["level"] >= 1
    assert abs(chosen.removed["filters"] - 0.3) <= selection.TOLERANCE
    with pytest.raises(pipeline.TargetError, match="closest reachable"):
        selection.select(analysis, scores, 0.3, "filters", "global", Constraints(round_to=4))


def test_auto_uses_given_ladders_for_their_groups(mixed):
    analysis, scores = mixed
    ladders = (("conv4", (25, 50, 75)),)
    chosen = selection.select(analysis, scores, 0.5, "macs", "global",
                              Constraints(round_to="auto", ladders=ladders))
    assert chosen.alignment["steps"]["conv4"] == "table"
    assert len(chosen.kept["conv4"]) in (25, 50, 75, 100)
