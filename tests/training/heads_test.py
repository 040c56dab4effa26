"""Choosing a multi-head model's classifier output, and fine-tuning it with the other heads held."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from pipeline.training import fit as train
from pipeline.training import heads
from foreign_models import mtcnn_onet

def _two_heads(width_a=3, width_b=3, softmax_a=True, softmax_b=False, K=tf_keras):
    L = K.layers
    x = inputs = K.Input((8, 8, 3))
    x = L.GlobalAveragePooling2D()(L.Conv2D(4, 3)(x))
    a = L.Dense(width_a, activation="softmax" if softmax_a else None, name="a")(x)
    b = L.Dense(width_b, activation="softmax" if softmax_b else None, name="b")(x)
    return K.Model(inputs, [a, b])


def test_the_head_of_the_data_width_is_the_classifier(K):
    onet = mtcnn_onet(classes=2, K=K)
    assert heads.output_names(onet) == ["conv6-2", "conv6-3", "conv6-1"]
    assert heads.classifier_output(onet, 2) == 2


def test_of_two_heads_of_that_width_the_softmax_one_wins(K):
    assert heads.classifier_output(_two_heads(softmax_a=False, softmax_b=True, K=K), 3) == 1


def test_a_name_picks_the_output_and_a_wrong_name_lists_them(K):
    model = _two_heads(K=K)
    assert heads.classifier_output(model, 3, name="b") == 1
    with pytest.raises(heads.HeadError, match=r"output='c' is not an output of "
                       r"m.h5 \(its outputs: a \(3,\), b \(3,\)\); pass output=<one of"):
        heads.classifier_output(model, 3, name="c", where="m.h5")


@pytest.mark.parametrize("model, classes, found", [
    (_two_heads(softmax_a=True, softmax_b=True), 3, "2"),  # two 3-way softmaxes
    (_two_heads(width_a=4, width_b=5), 3, "none"),  # no head of the data's width
])
def test_ambiguous_or_missing_classifier_is_one_line(model, classes, found):
    with pytest.raises(heads.HeadError) as error:
        heads.classifier_output(model, classes, where="m.h5")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"m.h5 has 2 outputs (a ")
    assert f"and {found} of them is a {classes}-class classifier" in message
    assert message.endswith("pass output=<one of those output names>")
    assert error.value.argument == "output"
    from pipeline.run import config_errors  # the command line names the config key
    assert config_errors.spelled(error.value).endswith(
        "pass --config.model.output=<one of those output names>")


def test_the_view_shares_weights_and_has_one_output(K):
    model = _two_heads(K=K)
    view = heads.classifier_view(model, 1)
    x = np.random.default_rng(0).random((2, 8, 8, 3), np.float32)
    np.testing.assert_allclose(view(x), model(x)[1])
    assert len(view.outputs) == 1 and view.get_layer("b") is model.get_layer("b")


def _data(classes=2, n=32):
    rng = np.random.default_rng(0)
    images = rng.random((n, 48, 48, 3), np.float32)
    labels = (images[:, :, :, 0].mean(axis=(1, 2)) > 0.5).astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8).repeat()

    class Data:
        train, val, test = ds, ds.take(2), ds.take(2)
        steps_per_epoch, num_classes = 4, classes
        sizes = {"train": n, "val": 16, "test": 16}
    return Data


def test_fine_tuning_trains_the_classifier_and_holds_the_other_heads(K, tmp_path):
    teacher = mtcnn_onet(classes=2, K=K)
    student = K.models.clone_model(teacher)
    student.set_weights([w + 0.05 for w in teacher.get_weights()])  # drifted from the teacher
    data = _data()
    x = next(iter(data.train))[0]

    def head_error():
        return sum(float(np.mean((np.asarray(s) - np.asarray(t)) ** 2))
                   for s, t in zip(student(x)[:2], teacher(x)[:2]))
    before = head_error()
    result = train.fit(student, data, train.Recipe(epochs=3, lr=1e-3, optimizer="adam"),
                       str(tmp_path), teacher=teacher, verbose=0)
    assert "heads_loss" in result.history and "accuracy" in result.history
    assert result.history["heads_loss"][-1] < result.history["heads_loss"][0]
    assert head_error() < before
    accuracy = train.evaluate(student, data.test, num_classes=2)["accuracy"]
    assert 0 <= accuracy <= 1
    assert type(result.model.optimizer).__module__.split(".")[0] == K.__name__


def test_a_multi_head_model_without_teacher_says_so(K, tmp_path):
    with pytest.raises(heads.HeadError, match="has 3 outputs; fine-tuning a multi-head model "
                       "holds its other heads to its unpruned original"):
        train.fit(mtcnn_onet(K=K), _data(), train.Recipe(epochs=1), str(tmp_path), verbose=0)


def test_an_ambiguous_model_fine_tunes_once_its_output_is_named(K, tmp_path):
    model = _two_heads(softmax_a=True, softmax_b=True, K=K)  # two 3-way softmaxes
    teacher = K.models.clone_model(model)
    rng = np.random.default_rng(0)
    ds = tf.data.Dataset.from_tensor_slices(
        (rng.random((16, 8, 8, 3), np.float32), rng.integers(0, 3, 16))).batch(8).repeat()

    class Data:
        train, val = ds, ds.take(1)
        steps_per_epoch, num_classes, sizes = 2, 3, {"train": 16, "val": 8}
    with pytest.raises(heads.HeadError, match="and 2 of them is a 3-class classifier"):
        train.fit(model, Data, train.Recipe(epochs=1), str(tmp_path), teacher=teacher,
                  verbose=0)
    result = train.fit(model, Data, train.Recipe(epochs=1), str(tmp_path / "named"),
                       teacher=teacher, verbose=0, output="b")
    assert result.epochs == 1 and "heads_loss" in result.history


def test_the_trainer_is_of_the_models_keras(K):
    model = mtcnn_onet(classes=2, K=K)
    trainer = heads.make_trainer(model, K.models.clone_model(model), 2, True)
    assert type(trainer).__name__ == "HeadsTrainer" and type(trainer).__module__.split(
        ".")[0] in (K.__name__, "pipeline")
    assert isinstance(trainer, K.Model)
    x = np.zeros((2, 48, 48, 3), np.float32)
    np.testing.assert_allclose(trainer(x), model(x)[2])  # call: the classifier head
