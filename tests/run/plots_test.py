"""The report's PNG figures and the Pareto front they highlight."""
import os

import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tf_keras
from pipeline.run import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_pareto_front_on_hand_made_points():
    points = [(0.5, 0.40), (1, 0.50), (2, 0.70), (2, 0.60), (3, 0.70), (4, 0.90),
              (5, 0.85), (6, 0.90), (1.5, 0.45)]
    # (2, .6) loses to (2, .7); (3, .7) ties on accuracy at a higher cost; (5, .85) and
    # (6, .9) lose to (4, .9); (1.5, .45) loses to (1, .5).
    assert plots.pareto_front(points) == [(0.5, 0.40), (1, 0.50), (2, 0.70), (4, 0.90)]


def test_pareto_front_edge_cases():
    assert plots.pareto_front([]) == []
    assert plots.pareto_front([(3, 0.5)]) == [(3, 0.5)]
    assert plots.pareto_front([(1, 0.5), (1, 0.5)]) == [(1, 0.5), (1, 0.5)]
    assert plots.pareto_front([(1, 0.9), (2, 0.5)]) == [(1, 0.9)]


def report():
    variants = []
    for name, macs, accuracy, p50 in (("baseline_fp32", 29e6, 0.934, 2.1),
                                      ("pruned_fp32", 14.5e6, 0.928, 1.2),
                                      ("pruned_int8", 14.5e6, 0.925, 0.6),
                                      ("baseline_int8", 29e6, 0.930, 0.9)):
        variants.append({"name": name, "macs": macs, "accuracy": accuracy,
                         "latency_ms": {"1": {"p50": p50, "p90": p50, "mean": p50}}})
    return {"variants": variants}


def curves():
    groups = {f"block{i}_conv{j}": [{"ratio": r, "accuracy": 0.9 - r * (0.1 + 0.1 * i),
                                     "macs_removed": r / 7, "kept": 32}
                                    for r in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)]
              for i in range(1, 4) for j in (1, 2)}
    return {"groups": groups, "sizes": {g: 32 for g in groups}, "examples": 6000,
            "baseline_accuracy": 0.9, "seconds": 1.0}


@pytest.fixture(scope="module")
def layers():
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((16, 16, 3))
    x = inputs
    for i, width in enumerate((16, 32, 64)):
        x = tf_keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                   name=f"conv{i}")(x)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(10, name="logits")(x))
    return pipeline.prune(model, 0.5, dry_run=True).plan.layers


def test_every_figure_is_a_png(tmp_path, layers):
    made = plots.write_all(report(), layers, curves(), str(tmp_path))
    assert set(made) == {"accuracy_vs_macs", "accuracy_vs_latency", "channels", "sensitivity"}
    for name, relative in made.items():
        assert relative == f"plots/{name}.png" and not os.path.isabs(relative)
        path = tmp_path / relative
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert path.stat().st_size > 10_000  # axes, labels and data, not an empty canvas
    leftovers = [f for f in os.listdir(tmp_path / "plots") if ".tmp" in f]
    assert not leftovers


def test_missing_inputs_skip_their_figures(tmp_path):
    body = report()
    for v in body["variants"]:
        v["latency_ms"] = {}
    made = plots.write_all(body, None, None, str(tmp_path))
    assert set(made) == {"accuracy_vs_macs"}
    assert sorted(os.listdir(tmp_path / "plots")) == ["accuracy_vs_macs.png"]


def test_channels_accept_plan_json_dicts(tmp_path, layers):
    rows = [{"name": l.name, "channels_before": l.channels_before,
             "channels_after": l.channels_after} for l in layers]
    path = plots.channels_per_layer(rows, str(tmp_path / "c.png"))
    assert open(path, "rb").read(8) == PNG_MAGIC
