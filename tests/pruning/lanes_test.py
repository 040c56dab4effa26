"""pipeline.pruning.lanes: round_to="auto"'s rule, its ladders and the values round_to takes."""
import pytest

from pipeline.pruning import lanes


@pytest.mark.parametrize("size, step", [(2048, 32), (128, 32), (64, 32), (63, 16), (32, 16),
                                        (31, 8), (16, 8), (15, 4), (8, 4), (7, 1), (1, 1)])
def test_the_rule_steps_by_group_width(size, step):
    assert lanes.auto_step(size) == step


def test_each_level_halves_the_steps_down_to_one():
    assert [lanes.auto_step(256, level) for level in range(lanes.LEVELS)] == [32, 16, 8, 4, 2, 1]
    assert lanes.auto_step(16, 1) == 4 and lanes.auto_step(16, 3) == 1


@pytest.mark.parametrize("size, step, widths", [
    (64, 32, (16, 32, 64)),  # 16 is a speed step too; 48 costs as much as 64
    (100, 32, (16, 32, 64, 96, 100)),  # the full width is always allowed
    (48, 16, (16, 32, 48)),
    (24, 8, (8, 16, 24)),
    (10, 4, (4, 8, 10)),
])
def test_ladders_hold_the_multiples_and_the_full_width(size, step, widths):
    assert lanes.ladder(size, step) == widths


@pytest.mark.parametrize("given, value", [("auto", "auto"), (" Auto ", "auto"), (16, 16),
                                          ("16", 16), (8.0, 8)])
def test_round_to_is_an_integer_or_auto(given, value):
    assert lanes.check(given) == value


@pytest.mark.parametrize("given, message", [
    (0, "round_to must be >= 1, got 0"), ("fast", "an integer >= 1 or 'auto', got 'fast'"),
    (2.5, "got 2.5"), (True, "got True"), (None, "got None")])
def test_other_round_to_values_are_refused(given, message):
    with pytest.raises(ValueError, match=message):
        lanes.check(given)


def test_describe_counts_groups_per_step():
    assert lanes.describe({"a": 32, "b": 8, "c": 32, "d": "table"}) == (
        "table (1 group), 32 (2 groups), 8 (1 group)")
