"""The run's alignment fallback: the coarsest round_to, from the asked one down, that reaches."""
import pytest

import pipeline
from declared_inputs import narrow_model
from pipeline.errors import TargetError
from pipeline.run import alignment


def test_steps_halve_down_to_one():
    assert alignment.steps(16) == (16, 8, 4, 2, 1)
    assert alignment.steps(12) == (12, 6, 3, 1)
    assert alignment.steps(1) == (1,)


def _plan(model, ratio, **keywords):
    return lambda step: pipeline.plan_pruning(model, ratio, round_to=step, **keywords)


def test_narrow_model_falls_back_to_the_coarsest_step_that_reaches():
    model = narrow_model()  # 8, 16 and 32 channels
    with pytest.raises(TargetError, match="closest reachable.*round_to=16"):
        pipeline.plan_pruning(model, 0.5, round_to=16)  # the library stays exact
    plan, used = alignment.reach(_plan(model, 0.5), 16, "macs")
    assert used in (8, 4, 2, 1)
    assert plan.settings["round_to"] == used
    assert abs(plan.removed["macs"] - 0.5) <= 0.02
    with pytest.raises(TargetError):  # and no coarser finer step would have done
        pipeline.plan_pruning(model, 0.5, round_to=used * 2)


def test_reachable_target_keeps_the_asked_step():
    plan, used = alignment.reach(_plan(narrow_model(widths=(64, 64, 64)), 0.3), 16, "macs")
    assert used == 16 and plan.settings["round_to"] == 16


def test_unreachable_at_every_step_names_the_steps_tried():
    with pytest.raises(TargetError, match=r"round_to=1, .*\(asked for round_to=16; finer "
                                          r"steps 8, 4, 2, 1 were tried too\)"):
        alignment.reach(_plan(narrow_model(), 0.9, min_filters=8), 16, "macs")


def test_other_target_errors_and_latency_are_not_retried():
    calls = []

    def attempt(step):
        calls.append(step)
        raise TargetError("prune ratio must be in [0, 1), got 1.5")

    with pytest.raises(TargetError, match="must be in"):
        alignment.reach(attempt, 16, "macs")
    with pytest.raises(TargetError, match="must be in"):
        alignment.reach(attempt, 16, "latency")
    assert calls == [16, 16]


def test_report_line_only_when_a_finer_step_was_used():
    assert alignment.line({"asked": 16, "used": 16}) == []
    assert alignment.line({}) == [] and alignment.line(None) == []
    assert alignment.line(alignment.record(16, 4)) == [
        "Alignment: prune.round_to=16 cannot reach the target on this model; channels were "
        "kept in multiples of 4 instead."]


def test_auto_is_tried_once_and_reaches_where_16_falls_back():
    calls = []
    model = narrow_model()  # 8, 16 and 32 channels

    def attempt(step):
        calls.append(step)
        return pipeline.plan_pruning(model, 0.5, round_to=step)

    plan, used = alignment.reach(attempt, "auto", "macs")
    assert calls == ["auto"] and used == "auto" and alignment.steps("auto") == ("auto",)
    assert abs(plan.removed["macs"] - 0.5) <= 0.02
    record = alignment.record("auto", used, plan.alignment)
    assert record == {"asked": "auto", "used": "auto", "level": plan.alignment["level"],
                      "steps": plan.alignment["summary"]}
    assert alignment.line(record)[0].startswith(
        "Alignment: prune.round_to=auto kept each layer's channels on its speed steps: ")


def test_auto_report_line_says_when_finer_steps_were_needed():
    record = alignment.record("auto", "auto", {"level": 2, "summary": "2 (3 groups)"})
    assert alignment.line(record) == [
        "Alignment: prune.round_to=auto kept each layer's channels on its speed steps: "
        "2 (3 groups) (step: groups); steps halved 2 time(s) to reach the target."]
