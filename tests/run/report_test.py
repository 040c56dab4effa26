"""report.json from the stages' typed results: the same keys and values as ever."""
import json

import keras
import tf_keras

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
from pipeline.run import report as reporting
from pipeline.run import stages
from pipeline.run.results import (Evaluation, ExportRecord, ExportResult, Measurement,
                                  ModelRecord, ModelResult, PrunedModel, PruneRecord, Pruning,
                                  Step, summary)
from pipeline.run.store import Store

BASELINE_KEYS = {"keras", "framework", "accuracy", "macs", "params", "seconds", "source", "bn_batches"}
PRUNED_KEYS = {"keras", "framework", "plan", "accuracy", "macs", "params", "seconds", "epochs",
               "accuracy_before_finetune", "removed", "finetune_epochs", "steps",
               "latency_target", "round_to", "bn_batches"}
VARIANT_KEYS = {"name", "source", "status", "reason", "tflite", "keras", "macs", "params",
                "size_bytes", "accuracy", "latency_ms", "parity", "notes"}
STEP_KEYS = {"step", "ratio", "plan", "keras", "macs", "accuracy_before_finetune", "accuracy",
             "epochs"}


class FakePlan:
    layers = None
    report = None


def _tiny(K):
    return K.Sequential([K.Input((2,)), K.layers.Dense(2)])


def results(tmp_path, steps=()):
    """A tf_keras baseline and a Keras 3 fine-tuned model: each reports its own Keras."""
    (tmp_path / "tflite").mkdir()
    (tmp_path / "tflite" / "pruned_fp32.tflite").write_bytes(b"x" * 1000)
    base = ModelResult(_tiny(tf_keras), "baseline.keras", "b",
                       ModelRecord(0.91, 2_000_000, 50_000, 3.0, source="/m.keras"))
    pruned = PrunedModel(None, "pruned_initial.keras", "p",
                         PruneRecord(0.42, 1_000_000, 20_000, {"macs": 0.5}, "plan.json"),
                         FakePlan())
    tuned = ModelResult(_tiny(keras), "pruned.keras", "t",
                        ModelRecord(0.88, 1_000_000, 20_000, 9.0, history={"loss": [1.0]},
                                    epochs=3))
    pruning = Pruning(pruned, tuned, FakePlan(), {"macs": 0.5, "filters": 0.4}, steps)
    exported = [ExportResult("pruned_fp32", "pruned", "tflite/pruned_fp32.tflite", "e",
                             ExportRecord("pruned.keras", 1_000_000, 20_000, {"examples": 8},
                                          ["verified"]))]
    evaluations = {"pruned_fp32": Evaluation(
        "pruned_fp32", Measurement(0.87, 500, 0.2, {"1": {"p50": 0.1, "p90": 0.1, "mean": 0.1}}),
        ("no faster",))}
    return base, pruning, exported, evaluations


def test_report_keys_and_values_come_from_the_typed_results(tmp_path):
    body = reporting.build({"seed": 0}, *results(tmp_path), str(tmp_path))
    assert set(body) == {"config", "baseline", "pruned", "variants"}
    assert body["baseline"] == {"keras": "baseline.keras",
                                "framework": f"tf_keras {tf_keras.__version__}", "accuracy": 0.91, "macs": 2_000_000,
                                "params": 50_000, "seconds": 3.0, "source": "/m.keras",
                                "bn_batches": 0}
    assert set(body["baseline"]) == BASELINE_KEYS  # a loaded baseline has no epochs
    pruned = body["pruned"]
    assert set(pruned) == PRUNED_KEYS and "history" not in pruned
    assert pruned["framework"] == f"Keras {keras.__version__}"
    assert (pruned["accuracy"], pruned["accuracy_before_finetune"]) == (0.88, 0.42)
    assert pruned["removed"] == {"macs": 0.5, "filters": 0.4}
    assert (pruned["finetune_epochs"], pruned["steps"], pruned["latency_target"]) == (3, [], None)
    (variant,) = body["variants"]
    assert set(variant) == VARIANT_KEYS
    assert variant["size_bytes"] == 1000 and variant["accuracy"] == 0.87
    assert (variant["status"], variant["reason"]) == ("ok", "")
    assert variant["notes"] == ["verified", "no faster"]  # the export's, then the evaluation's


def test_steps_are_listed_with_their_fields(tmp_path):
    steps = (Step(1, 0.29, "steps/plan_1.json", "steps/pruned_1.keras", 1_400_000, 0.5, 0.8, 1),
             Step(2, 0.29, "steps/plan_2.json", "steps/pruned_2.keras", 1_000_000, 0.4, 0.88, 1))
    body = reporting.build({}, *results(tmp_path, steps), str(tmp_path))
    assert [set(s) for s in body["pruned"]["steps"]] == [STEP_KEYS, STEP_KEYS]
    assert body["pruned"]["steps"][1]["accuracy"] == 0.88


def test_report_stage_writes_json_and_markdown(tmp_path):
    store = Store(str(tmp_path))
    body = stages.write_report({"seed": 0}, *results(tmp_path), store)
    assert json.loads((tmp_path / "report.json").read_text()) == body
    assert set(body) == {"config", "baseline", "pruned", "variants", "distribute", "plots"}
    assert body["distribute"] == {"strategy": "none", "num_workers": 1, "replicas": 1}
    assert "| pruned_fp32 | 0.8700 |" in (tmp_path / "report.md").read_text()


def test_summary_drops_unset_fields_and_the_history():
    record = ModelRecord(0.5, 10, 2, history={"loss": [1.0]}, epochs=2)
    assert summary(record) == {"accuracy": 0.5, "macs": 10, "params": 2, "seconds": 0.0,
                               "epochs": 2, "bn_batches": 0}


LATENCY = {"device": "phone", "ratio": 0.4, "measured": True, "full_ms": 2.5, "budget_ms": 1.5,
           "predicted_ms": 1.48, "measured_ms": 1.52, "rounds": [{}, {}]}


def test_latency_line_says_budget_prediction_and_measurement():
    assert reporting.latency_line(LATENCY) == (
        "Latency target: budget 1.500 ms (60% of 2.500 ms, 1 thread, phone), predicted "
        "1.480 ms, measured 1.520 ms, 2 round(s).")
    table = {**LATENCY, "measured": False, "measured_ms": None, "rounds": [{}]}
    assert "not measured (device table), 1 round(s)." in reporting.latency_line(table)


def test_markdown_heads_the_variant_table_with_both_accuracies(tmp_path):
    body = reporting.build({}, *results(tmp_path), str(tmp_path))
    body["plots"] = {"channels": "plots/channels.png"}
    lines = reporting.markdown(body).splitlines()
    assert lines[0] == "# Pruning report"
    assert lines[2] == (f"Baseline (`baseline.keras`, tf_keras {tf_keras.__version__}): test "
                        "accuracy 0.9100, 2.00M MACs, 50.00k params.")
    assert lines[3] == (f"Pruned (`pruned.keras`, Keras {keras.__version__}): test accuracy "
                        "0.4200 before and 0.8800 after 3 fine-tuning epochs, 1.00M MACs, "
                        "20.00k params.")
    assert ("| pruned_fp32 | 0.8700 | 1.00M | 20.00k | 1.0 KiB | 1 thr 0.100 | "
            "tflite/pruned_fp32.tflite |") in lines
    notes = lines.index("## Variant notes")
    assert lines[notes + 2:notes + 6] == ["**pruned_fp32**", "", "- verified", "- no faster"]
    assert lines[-3:] == ["## Channels per layer before and after pruning", "",
                          "![Channels per layer before and after pruning](plots/channels.png)"]
    assert not any(line.startswith("Latency target") for line in lines)


def test_markdown_of_a_latency_target_and_of_steps(tmp_path):
    steps = (Step(1, 0.29, "steps/plan_1.json", "steps/pruned_1.keras", 1_400_000, 0.5, 0.8, 1),
             Step(2, 0.29, "steps/plan_2.json", "steps/pruned_2.keras", 1_000_000, 0.4, 0.88, 1))
    body = reporting.build({}, *results(tmp_path, steps), str(tmp_path))
    body["pruned"]["latency_target"] = LATENCY
    text = reporting.markdown(body)
    assert reporting.latency_line(LATENCY) in text.splitlines()
    assert (f"Pruned (`pruned.keras`, Keras {keras.__version__}, 2 steps; 'before' is before "
            "the last step's fine-tuning)") in text
    assert "fine-tuning epochs in all" in text
    assert "| 2 | 29.0% | 1.00M | 0.4000 | 0.8800 | steps/plan_2.json |" in text


def with_outcomes(tmp_path):
    """The results above plus a failed pruned_int8 and a not applicable pruned_2of4."""
    base, pruning, exported, evaluations = results(tmp_path)
    exported = exported + [
        ExportResult("pruned_int8", "pruned", "tflite/pruned_int8.tflite", "i", None, "failed",
                     "variant 'pruned_int8': agreement 98.44% | below 99%"),
        ExportResult("pruned_2of4", "pruned", "tflite/pruned_2of4.tflite", "s", None,
                     "not_applicable", "no layer is eligible, so no file is written: c1: 3 ...")]
    return base, pruning, exported, evaluations


def test_variants_not_made_keep_their_entry_with_status_reason_and_nulls(tmp_path):
    body = reporting.build({}, *with_outcomes(tmp_path), str(tmp_path))
    made, failed, skipped = body["variants"]
    assert set(failed) == set(skipped) == set(made) == VARIANT_KEYS
    assert (failed["status"], skipped["status"]) == ("failed", "not_applicable")
    assert failed["reason"] == "variant 'pruned_int8': agreement 98.44% | below 99%"
    for key in ("tflite", "keras", "macs", "params", "size_bytes", "accuracy", "latency_ms",
                "parity"):
        assert failed[key] is None and skipped[key] is None
    assert failed["notes"] == [] and failed["source"] == "pruned"


def test_markdown_shows_failed_and_not_applicable_variants(tmp_path):
    body = reporting.build({}, *with_outcomes(tmp_path), str(tmp_path))
    lines = reporting.markdown(body).splitlines()
    assert ("| pruned_int8 | failed: variant 'pruned_int8': agreement 98.44% \\| below 99% | "
            "- | - | - | - | - |") in lines
    assert "| pruned_2of4 | not applicable | - | - | - | - | - |" in lines
    notes = lines[lines.index("## Variant notes"):]
    at = notes.index("**pruned_int8**")
    assert notes[at + 2] == ("- failed, no file written: variant 'pruned_int8': agreement "
                             "98.44% | below 99%")
    at = notes.index("**pruned_2of4**")
    assert notes[at + 2].startswith("- not applicable, no file written: no layer is eligible")


def test_exit_status_is_3_only_when_a_variant_failed(tmp_path):
    body = reporting.build({}, *with_outcomes(tmp_path), str(tmp_path))
    assert reporting.exit_status(body) == reporting.VARIANT_FAILED == 3
    assert reporting.failures(body) == [
        "pruned_int8: variant 'pruned_int8': agreement 98.44% | below 99%"]
    body["variants"] = [v for v in body["variants"] if v["status"] != "failed"]
    assert reporting.exit_status(body) == 0 and reporting.failures(body) == []  # explained
    assert reporting.exit_status({"distribute": {}, "chief": False}) == 0  # a worker's


def test_report_stage_plots_only_the_made_variants(tmp_path):
    body = stages.write_report({}, *with_outcomes(tmp_path), Store(str(tmp_path)))
    assert set(body["plots"]) == {"accuracy_vs_macs", "accuracy_vs_latency"}
    assert [v["status"] for v in json.loads((tmp_path / "report.json").read_text())[
        "variants"]] == ["ok", "failed", "not_applicable"]
