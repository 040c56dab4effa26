"""Model zoo: every ``tf_keras.applications`` and ``keras.applications`` constructor prunes.

Each model is built untrained (``weights=None``, ``classes=10``) at the
smallest input it accepts, then:

* ``pipeline.prune(model, 0.0)`` rebuilds it unchanged: same outputs on a
  random batch, same parameter count (the config round trip and the weight
  copy lose nothing); for Keras 3, on each family's representative only (the
  rebuild code is the same for a family's members, and CI time is finite);
* ``pipeline.prune(model, 0.4, target="macs")`` removes 40% of its MACs
  (within 2 points, measured by ``count_macs`` on both models), keeps the
  output shape and runs; the smallest model of each family (its
  representative) also converts to TFLite. Conversion depends on the layer
  classes, which a family's members share, and converting the largest
  models (up to 350 M parameters) costs most of the zoo's time and memory.

The same checks run over both Kerases: Keras 3's zoo (40 constructors in
Keras 3.15; it has no RegNet or ResNetRS) goes through Keras 3's own graph
and comes back a Keras 3 model. The constructors are discovered from the
modules, so a new family in an upgrade is tested without editing this file.
The smallest model of each family runs by default; the rest are marked
``slow``.
"""
import ctypes
import ctypes.util
import gc
import inspect

import numpy as np
import pytest

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf

from kerases import KERAS_IDS, KERASES, keras_id

RATIO = 0.4
MACS_TOLERANCE = 0.02
DEFAULT_SIZE = 32  # the applications' own minimum for most families
# Families whose stem needs a larger input (their min_size in tf_keras).
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
# The smallest model of each family: fast enough to run on every test run.
REPRESENTATIVES = frozenset({
    "ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionV3",
    "InceptionResNetV2", "MobileNet", "MobileNetV2", "MobileNetV3Small", "NASNetMobile",
    "RegNetX002", "RegNetY002", "ResNet50", "ResNet50V2", "ResNetRS50", "VGG16", "Xception",
})


def constructors(K) -> list[str]:
    """Names of the model builders in ``K.applications``.

    A builder is a public function named in CamelCase that takes ``weights``
    and ``classes`` (which excludes helpers such as ``decode_predictions``).
    """
    names = []
    for name, value in vars(K.applications).items():
        if not (name[:1].isupper() and inspect.isfunction(value)):
            continue
        params = inspect.signature(value).parameters
        if "weights" in params and "classes" in params:
            names.append(name)
    return sorted(names)


def _params():
    return [pytest.param(K, name, id=f"{keras_id(K)}-{name}",
                         marks=() if name in REPRESENTATIVES else (pytest.mark.slow,))
            for K in KERASES for name in constructors(K)]


@pytest.fixture(autouse=True)
def _free_memory():
    """The largest models hold gigabytes: drop each before building the next.

    The TFLite converter builds model-sized protobufs and flatbuffers on the C
    heap; glibc keeps those pages mapped after they are freed unless asked
    (``malloc_trim``), and over 71 models the run would be OOM-killed.
    """
    yield
    for K in KERASES:
        K.backend.clear_session()
    gc.collect()
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


# Families tf_keras has and Keras 3.15 does not.
ONLY_IN_TF_KERAS = frozenset({"RegNetX002", "RegNetY002", "ResNetRS50"})


@pytest.mark.parametrize("K", KERASES, ids=KERAS_IDS)
def test_discovery_finds_every_family(K):
    found = set(constructors(K))
    expected = REPRESENTATIVES - (ONLY_IN_TF_KERAS if K is KERASES[1] else frozenset())
    assert expected <= found, sorted(expected - found)
    assert set(MIN_SIZE) <= found, sorted(set(MIN_SIZE) - found)
    assert len(found) >= 40


def _build(K, name):
    size = MIN_SIZE.get(name, DEFAULT_SIZE)
    builder = getattr(K.applications, name)
    return builder(weights=None, classes=10, input_shape=(size, size, 3))


def _batch(model):
    shape = (1,) + tuple(model.input_shape[1:])
    return np.random.uniform(0.0, 255.0, size=shape).astype(np.float32)


@pytest.mark.parametrize("K, name", _params())
def test_zoo_model(K, name):
    model = _build(K, name)
    x = _batch(model)
    expected = model(x, training=False).numpy()
    assert np.all(np.isfinite(expected)), f"{name}: the unpruned model gives non-finite outputs"

    if K is KERASES[0] or name in REPRESENTATIVES:  # Keras 3: per family, to spare CI time
        same = pipeline.prune(model, 0.0).model
        np.testing.assert_allclose(same(x, training=False).numpy(), expected, rtol=0,
                                   atol=1e-5, err_msg=f"{name}: a ratio-0 plan changed the outputs")
        assert pipeline.count_params(same) == pipeline.count_params(model)
        del same

    pruned = pipeline.prune(model, RATIO, target="macs").model
    assert type(pruned).__module__.split(".")[0] == K.__name__, "the pruned model changed Keras"
    out = pruned(x, training=False).numpy()
    assert out.shape == expected.shape
    assert np.all(np.isfinite(out)), f"{name}: the pruned model gives non-finite outputs"

    before, after = pipeline.count_macs(model), pipeline.count_macs(pruned)
    removed = 1.0 - after / before
    assert abs(removed - RATIO) <= MACS_TOLERANCE, (
        f"{name}: removed {removed:.1%} of MACs ({before} -> {after}), wanted {RATIO:.0%}")

    if name in REPRESENTATIVES:  # conversion is per layer class: one model per family covers it
        del model  # the converter needs a few copies of the pruned weights: free the original first
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(pruned).convert()
        assert len(flatbuffer) > 0
