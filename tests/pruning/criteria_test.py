"""pipeline.pruning.criteria: each criterion's scores, worked out from the weights by hand.

On Input(8,8,3) -> c1 Conv2D(8) -> BN -> ReLU -> c2 Conv2D(16) -> GAP -> Dense(3)
a channel of c1 owns c1's filter and bias, BN's gamma and beta (scored; the
moving statistics are sliced but not scored) and c2's input slice; a channel
of c2 owns c2's filter and bias and the Dense row it feeds.
"""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import pipeline
from pipeline.pruning import criteria

L = tf_keras.layers


@pytest.fixture(scope="module")
def model():
    x = inputs = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(16, 3, name="c2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    model = tf_keras.Model(inputs, L.Dense(3, name="head")(x), name="tiny")
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in w.name
                       else rng.normal(0, 0.5, w.shape).astype("float32")
                       for w in model.weights])
    return model


def weights(model):
    k1, b1 = model.get_layer("c1").get_weights()
    gamma, beta, _, _ = model.get_layer("bn").get_weights()
    k2, b2 = model.get_layer("c2").get_weights()
    dense, _ = model.get_layer("head").get_weights()
    return k1, b1, gamma, beta, k2, b2, dense


def slices(model):
    """Per group, per channel: every scored weight slice it owns, flattened and joined."""
    k1, b1, gamma, beta, k2, b2, dense = weights(model)
    c1 = [np.concatenate([k1[..., j].ravel(), [b1[j], gamma[j], beta[j]], k2[:, :, j, :].ravel()])
          for j in range(8)]
    c2 = [np.concatenate([k2[..., j].ravel(), [b2[j]], dense[j]]) for j in range(16)]
    return {"c1": c1, "c2": c2}


def scores(model, name, **context):
    analysis = pipeline.analyse(model)
    return criteria.score(analysis, name, criteria.Context(model=model, **context))


def test_l1_sums_the_absolute_weights_of_every_slice(model):
    got = scores(model, "l1")
    assert set(got) == {"c1", "c2"}
    for group, rows in slices(model).items():
        assert got[group].dtype == np.float64 and got[group].shape == (len(rows),)
        np.testing.assert_allclose(got[group], [np.abs(r).sum() for r in rows], rtol=1e-5)


def test_l2_is_the_norm_of_every_slice(model):
    got = scores(model, "l2")
    for group, rows in slices(model).items():
        np.testing.assert_allclose(got[group], [np.sqrt((r ** 2).sum()) for r in rows], rtol=1e-5)


def test_bn_gamma_reads_gamma_and_falls_back_to_l1_without_batchnorm(model):
    got = scores(model, "bn_gamma")
    gamma = weights(model)[2]
    np.testing.assert_allclose(got["c1"], np.abs(gamma), rtol=1e-6)
    np.testing.assert_allclose(got["c2"], scores(model, "l1")["c2"])  # no BN: l1, scale 1


def test_fpgm_sums_the_distances_between_a_groups_filters(model):
    k1, b1, *_ = weights(model)
    filters = np.hstack([k1.reshape(-1, 8).T, b1[:, None]])  # kernel and bias of each filter
    expected = [np.linalg.norm(filters - f, axis=1).sum() for f in filters]
    np.testing.assert_allclose(scores(model, "fpgm")["c1"], expected, rtol=1e-4)


def test_random_is_seeded(model):
    a, b, c = (scores(model, "random", seed=s)["c2"] for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and ((0 <= a) & (a < 1)).all()


def test_taylor_is_weight_times_gradient_summed_over_each_slice(model):
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(4, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 4))
               for _ in range(2)]
    got = scores(model, "taylor", data=batches, batches=2)
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    total = {}
    for x, y in batches:
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=False))
        for w, g in zip(model.trainable_weights, tape.gradient(value, model.trainable_weights)):
            total[w.name] = total.get(w.name, 0) + g.numpy()
    product = {w.name: w.numpy() * total[w.name] for w in model.trainable_weights}
    c2 = product["c2/kernel:0"].reshape(-1, 16).sum(0) + product["c2/bias:0"] + product[
        "head/kernel:0"].sum(1)
    first_order = np.abs(c2)
    # An l1 tie-breaker below half the smallest gap (of all channels' first-order scores,
    # so at most half of c2's own smallest gap) orders ties without reordering the rest.
    gap = np.diff(np.unique(first_order)).min()
    assert (got["c2"] >= first_order - 1e-7).all()
    assert (got["c2"] - first_order <= 0.5 * gap + 1e-6).all()
    np.testing.assert_array_equal(np.argsort(got["c2"]), np.argsort(first_order))


def test_taylor_refuses_an_empty_data_set(model):
    with pytest.raises(pipeline.PruningError, match="empty data iterable"):
        scores(model, "taylor", data=[])


def test_a_zero_channel_scores_zero_under_the_magnitude_criteria(model):
    dead = tf_keras.models.clone_model(model)
    dead.set_weights(model.get_weights())
    k1, b1 = dead.get_layer("c1").get_weights()
    k1[..., 3], b1[3] = 0.0, 0.0
    dead.get_layer("c1").set_weights([k1, b1])
    bn = dead.get_layer("bn").get_weights()
    bn[0][3] = bn[1][3] = 0.0
    dead.get_layer("bn").set_weights(bn)
    k2, b2 = dead.get_layer("c2").get_weights()
    k2[:, :, 3, :] = 0.0
    dead.get_layer("c2").set_weights([k2, b2])
    for name in ("l1", "l2", "bn_gamma"):
        got = scores(dead, name)["c1"]
        assert got[3] == 0.0 and (np.delete(got, 3) > 0).all(), name


def test_a_registered_criterion_decides_what_is_kept(model, monkeypatch):
    monkeypatch.setattr(criteria, "_CRITERIA", criteria._CRITERIA.copy())

    @pipeline.register_criterion("first_wins")
    def first_wins(analysis, context):
        per_id = np.zeros(analysis.n_ids)
        for g in analysis.groups:
            per_id[g.classes] = -np.arange(g.size)  # the first channels are the most important
        return per_id

    assert "first_wins" in pipeline.criterion_names()
    plan = pipeline.plan_pruning(model, 0.5, target="filters", scope="layer",
                                 criterion="first_wins")
    assert {k: list(v) for k, v in plan.kept().items()} == {"c1": list(range(4)),
                                                            "c2": list(range(8))}


def test_criterion_names_lists_the_built_ins():
    assert set(pipeline.criterion_names()) >= {"l1", "l2", "bn_gamma", "fpgm", "taylor",
                                               "random"}
