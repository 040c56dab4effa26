"""The family summary: every file of every ratio, the Pareto front, failures, the table.

Made-up reports, no model: each test checks what a user reads in report.json/report.md.
"""
import pytest

from pipeline.run import family_report as fr
from pipeline.run import plots
from pipeline.run import report as reporting
from pipeline.run.family_report import Member

BASE_MACS = 1_000_000


def _variant(name, source, macs, accuracy, p50, status="ok", reason=""):
    if status != "ok":
        return {"name": name, "source": source, "status": status, "reason": reason,
                "tflite": None, "macs": None, "accuracy": None, "latency_ms": None,
                "size_bytes": None}
    latency = {"1": {"p50": p50, "p90": p50 * 1.1, "mean": p50}} if p50 is not None else {}
    return {"name": name, "source": source, "status": "ok", "reason": "",
            "tflite": f"tflite/{name}.tflite", "macs": macs, "accuracy": accuracy,
            "latency_ms": latency, "size_bytes": macs // 10}


def _member(ratio, fp32, int8, *extra):
    """A ratio's report: the shared baseline row (from its folder), pruned_fp32 and _int8."""
    macs = int(BASE_MACS * (1 - ratio))
    variants = [{**_variant("baseline_fp32", "baseline", BASE_MACS, 0.9, 1.0),
                 "tflite": "../tflite/baseline_fp32.tflite"},
                _variant("pruned_fp32", "pruned", macs, *fp32),
                _variant("pruned_int8", "pruned", macs, *int8), *extra]
    return Member(ratio, fr.folder(ratio), {
        "pruned": {"removed": {"macs": ratio}, "accuracy": fp32[0]}, "variants": variants})


BASE = [_variant("baseline_fp32", "baseline", BASE_MACS, 0.9, 1.0)]


def test_folder_names_are_exact_and_distinct():
    assert [fr.folder(r) for r in (0.3, 0.5, 0.75, 0.333)] == [
        "ratio_0.30", "ratio_0.50", "ratio_0.75", "ratio_0.333"]


def test_points_list_every_file_once_and_ring_the_pareto_front():
    members = [_member(0.3, (0.88, 0.7), (0.87, 0.4)),
               _member(0.5, (0.85, 0.5), (0.86, 0.3)),
               _member(0.7, (0.80, 0.35), (0.70, 0.35))]  # int8 at 0.7: as fast, worse
    family = fr.summarise((0.3, 0.5, 0.7), BASE, members, base_macs=BASE_MACS, threads=(2, 1))
    points = family["points"]
    # The baseline once (not once per ratio), then each ratio's pruned files.
    assert [(p["ratio"], p["variant"]) for p in points] == [
        (None, "baseline_fp32"), (0.3, "pruned_fp32"), (0.3, "pruned_int8"),
        (0.5, "pruned_fp32"), (0.5, "pruned_int8"), (0.7, "pruned_fp32"), (0.7, "pruned_int8")]
    front = [(p["ratio"], p["variant"]) for p in points if p["pareto"]]
    # 0.5 int8 (0.86 at 0.3 ms) beats 0.5 fp32 (0.85 at 0.5) and 0.7 fp32 (0.80 at 0.35);
    # nothing faster is as accurate as the others.
    assert front == [(None, "baseline_fp32"), (0.3, "pruned_fp32"), (0.3, "pruned_int8"),
                     (0.5, "pruned_int8")]
    assert family["cost"] == "latency" and family["threads"] == 1  # the fewest threads
    by = {(p["ratio"], p["variant"]): p for p in points}
    assert by[(0.5, "pruned_fp32")]["macs_removed"] == pytest.approx(0.5)
    assert by[(0.5, "pruned_fp32")]["tflite"] == "ratio_0.50/tflite/pruned_fp32.tflite"
    assert by[(None, "baseline_fp32")]["tflite"] == "tflite/baseline_fp32.tflite"
    assert by[(0.3, "pruned_int8")]["latency_p90_ms"] == pytest.approx(0.44)


def test_without_latency_the_front_weighs_macs():
    members = [_member(0.3, (0.88, None), (0.89, None)), _member(0.6, (0.8, None), (0.7, None))]
    base = [_variant("baseline_fp32", "baseline", BASE_MACS, 0.9, None)]
    family = fr.summarise((0.3, 0.6), base, members, base_macs=BASE_MACS, threads=())
    assert family["cost"] == "macs" and family["threads"] is None
    # Same MACs within a ratio: the more accurate file of each is on the front.
    assert [(p["ratio"], p["variant"]) for p in family["points"] if p["pareto"]] == [
        (None, "baseline_fp32"), (0.3, "pruned_int8"), (0.6, "pruned_fp32")]


def test_a_failed_ratio_and_a_failed_variant_are_recorded_and_fail_the_exit_status():
    failed_int8 = _variant("pruned_2of4", "pruned", 0, 0, 0, status="failed",
                           reason="agreement 90% < 99%")
    members = [_member(0.3, (0.88, 0.7), (0.87, 0.4), failed_int8),
               Member(0.95, "ratio_0.95", None, "cannot remove 95.0% of macs")]
    family = fr.summarise((0.3, 0.95), BASE, members, base_macs=BASE_MACS, threads=(1,))
    ok, failed = family["members"]
    assert ok["status"] == "ok" and ok["report"] == "ratio_0.30/report.json"
    assert ok["failed_variants"] == [{"name": "pruned_2of4", "reason": "agreement 90% < 99%"}]
    assert failed == {"ratio": 0.95, "dir": "ratio_0.95", "status": "failed",
                      "reason": "cannot remove 95.0% of macs", "report": None,
                      "macs_removed": None, "accuracy": None, "failed_variants": []}
    assert {p["ratio"] for p in family["points"]} == {None, 0.3}  # nothing of 0.95
    report = {"variants": BASE, "family": family}
    assert reporting.exit_status(report) == reporting.VARIANT_FAILED
    assert reporting.failures(report) == ["pruned_2of4 (ratio 0.3): agreement 90% < 99%"]
    assert reporting.ratio_failures(report) == ["0.95: cannot remove 95.0% of macs"]
    fine = fr.summarise((0.3,), BASE, members[:1], base_macs=BASE_MACS, threads=(1,))
    fine["members"][0]["failed_variants"] = []
    assert reporting.exit_status({"variants": BASE, "family": fine}) == reporting.SUCCESS


def test_markdown_tables_every_point_and_names_each_ratio(tmp_path):
    members = [_member(0.3, (0.88, 0.7), (0.87, 0.4)),
               Member(0.95, "ratio_0.95", None, "cannot remove 95.0% of macs")]
    family = fr.summarise((0.3, 0.95), BASE, members, base_macs=BASE_MACS, threads=(1,))
    report = {"config": {"prune": {"target": "macs"}}, "family": family,
              "baseline": {"accuracy": 0.9, "macs": BASE_MACS, "params": 5000},
              "plots": {"family_tradeoff": "plots/family_tradeoff.png"}}
    text = fr.markdown(report)
    assert "| 0.3 | 30.0% | pruned_int8 | 0.8700 | 0.400 (0.440) | 68.4 KiB | * | " \
           "ratio_0.30/tflite/pruned_int8.tflite |" in text
    assert "| baseline | 0.0% | baseline_fp32 | 0.9000 | 1.000 (1.100) |" in text
    assert "(1 of 2 finished)" in text
    assert "- 0.95: failed, nothing exported: cannot remove 95.0% of macs" in text
    assert "[ratio_0.30/report.md](ratio_0.30/report.md)" in text
    assert "](plots/family_tradeoff.png)" in text
    path = plots.family_tradeoff(family["points"], family["cost"], str(tmp_path / "f.png"))
    assert open(path, "rb").read()[:4] == b"\x89PNG"
    assert plots.family_tradeoff([], "latency", str(tmp_path / "none.png")) is None
