"""Models in the shapes that come from outside, saved the way their authors saved them,
and a folder of 64x64 PNGs whose classes a small net can tell apart.

Shared by tests/integration/foreign_models_test.py and the focused tests of what
those runs exposed. Each builder is seeded and untrained: the pipeline's run
fine-tunes what it prunes, and the tests hold the run to its outcomes, not to a
trained model's accuracy.

- :func:`mini_xception`: the facial-expression classifier of oarriaga/face_classification
  (Keras 2, ``.hdf5``): Conv-BN-ReLU, four SeparableConv2D modules with a strided 1x1
  Conv2D residual each, a final Conv2D of the class count, global pooling, softmax.
- :func:`mtcnn_onet`: MTCNN's O-Net: PReLU with ``shared_axes=[1, 2]``, Permute ->
  Flatten -> Dense, and three heads (face classification softmax, bbox Dense(4),
  landmarks Dense(10)).
- :func:`mobilenet_v2`: ``tf_keras.applications.MobileNetV2(alpha=0.35)`` at 64x64, ``.keras``.
- The mini-Xception and the O-Net also in Keras 3, saved as Keras 3 ``.keras`` files (what
  ``pip install tensorflow`` users have since TF 2.16).
- :func:`old_sequential`: a Keras 2 era Sequential CNN (Conv2D/MaxPooling2D/Dropout/Flatten/
  Dense), trained on [-1, 1] input, ``.h5``.
"""
import os

import numpy as np

import pipeline  # noqa: F401  (first: selects tf_keras before TensorFlow loads)
import tensorflow as tf
import tf_keras

L = tf_keras.layers


def mini_xception(shape=(64, 64, 1), classes=7, K=tf_keras):
    """oarriaga's mini_XCEPTION: 8-128 channels, 7 expressions, 64x64 grayscale, in Keras ``K``."""
    K.utils.set_random_seed(0)
    L = K.layers
    reg = K.regularizers.l2(0.01)
    x = inputs = K.Input(shape)
    for _ in range(2):
        x = L.Conv2D(8, 3, kernel_regularizer=reg, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("relu")(x)
    for width in (16, 32, 64, 128):
        residual = L.Conv2D(width, 1, strides=2, padding="same", use_bias=False)(x)
        residual = L.BatchNormalization()(residual)
        x = L.SeparableConv2D(width, 3, padding="same", depthwise_regularizer=reg,
                              pointwise_regularizer=reg, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("relu")(x)
        x = L.SeparableConv2D(width, 3, padding="same", depthwise_regularizer=reg,
                              pointwise_regularizer=reg, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.MaxPooling2D(3, strides=2, padding="same")(x)
        x = L.add([x, residual])
    x = L.Conv2D(classes, 3, padding="same")(x)
    x = L.GlobalAveragePooling2D()(x)
    return K.Model(inputs, L.Activation("softmax", name="predictions")(x))


def mtcnn_onet(shape=(48, 48, 3), classes=2, K=tf_keras):
    """MTCNN's O-Net (ipazc/mtcnn layout): face classification, bbox and landmark heads, in
    Keras ``K``."""
    K.utils.set_random_seed(0)
    L = K.layers
    x = inputs = K.Input(shape)
    for i, (width, kernel, pool) in enumerate(((32, 3, 3), (64, 3, 3), (64, 3, 2))):
        x = L.Conv2D(width, kernel, name=f"conv{i + 1}")(x)
        x = L.PReLU(shared_axes=[1, 2], name=f"prelu{i + 1}")(x)
        x = L.MaxPooling2D(pool, strides=2, padding="same" if pool == 3 else "valid")(x)
    x = L.Conv2D(128, 2, name="conv4")(x)
    x = L.PReLU(shared_axes=[1, 2], name="prelu4")(x)
    x = L.Permute((3, 2, 1))(x)
    x = L.Flatten()(x)
    x = L.Dense(256, name="conv5")(x)
    x = L.PReLU(name="prelu5")(x)
    face = L.Dense(classes, activation="softmax", name="conv6-1")(x)
    bbox = L.Dense(4, name="conv6-2")(x)
    landmarks = L.Dense(10, name="conv6-3")(x)
    return K.Model(inputs, [bbox, landmarks, face])


def mobilenet_v2(classes=4):
    """The applications' MobileNetV2 at width 0.35 and 64x64, untrained."""
    tf_keras.utils.set_random_seed(0)
    return tf_keras.applications.MobileNetV2(alpha=0.35, input_shape=(64, 64, 3),
                                             weights=None, classes=classes)


def old_sequential(shape=(64, 64, 3), classes=4):
    """A Keras 2 tutorial CNN: two Conv-Conv-Pool-Dropout blocks, Flatten, Dense, softmax."""
    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential([
        L.Conv2D(32, 3, padding="same", activation="relu", input_shape=shape),
        L.Conv2D(32, 3, activation="relu"),
        L.MaxPooling2D(2),
        L.Dropout(0.25),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.Conv2D(64, 3, activation="relu"),
        L.MaxPooling2D(2),
        L.Dropout(0.25),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        L.Dropout(0.5),
        L.Dense(classes, activation="softmax"),
    ])


def pattern_folder(root, classes=4, per_class=24, size=64) -> str:
    """``root/class_<i>/*.png``: RGB images whose class sets the stripe direction and hue.

    Class ``i`` draws stripes at angle ``i * 180 / classes`` degrees in its own
    colour over noise, so even a few epochs of a small net beat chance. Like most
    photographs, each image holds black and white pixels (a corner each), which the
    int8 variant's calibration needs to reach an input scale of exactly 1/255.
    """
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for c in range(classes):
        folder = os.path.join(str(root), f"class_{c}")
        os.makedirs(folder, exist_ok=True)
        angle = np.pi * c / classes
        colour = np.array([(c * 97) % 256, (c * 53 + 80) % 256, (255 - c * 61) % 256])
        for i in range(per_class):
            phase = rng.uniform(0, 2 * np.pi)
            wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 0.5 + phase)
            stripes = (wave > 0)[..., None] * colour
            noise = rng.integers(0, 64, (size, size, 3))
            pixels = np.clip(stripes * 0.75 + noise, 0, 255).astype(np.uint8)
            pixels[:2, :2], pixels[-2:, -2:] = 0, 255
            with open(os.path.join(folder, f"{i}.png"), "wb") as f:
                f.write(tf.io.encode_png(tf.constant(pixels)).numpy())
    return str(root)


def folder_arrays(folder, size, channels):
    """The folder's images (0-255 floats, resized, gray if ``channels`` is 1) and labels."""
    images, labels = [], []
    for c, name in enumerate(sorted(os.listdir(folder))):
        for file in sorted(os.listdir(os.path.join(folder, name))):
            pixels = tf.io.decode_png(tf.io.read_file(os.path.join(folder, name, file)))
            pixels = tf.image.resize(pixels, (size, size))
            if channels == 1:
                pixels = tf.image.rgb_to_grayscale(pixels)
            images.append(pixels.numpy())
            labels.append(c)
    return np.stack(images), np.array(labels)


def author_trains(model, folder, scale=(0.0, 1.0), losses=None):
    """An epoch of Adam on the folder, as the model's author trained before saving."""
    size, channels = model.input_shape[1], model.input_shape[3]
    x, y = folder_arrays(folder, size, channels)
    low, high = scale
    x = low + x / 255.0 * (high - low)
    if losses is None:
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    else:  # MTCNN: the face head on labels, bbox and landmarks on (here) zero targets
        model.compile("adam", losses)
        targets = [np.zeros((len(y), 4)), np.zeros((len(y), 10)), y]
        model.fit(x, targets, batch_size=16, epochs=1, verbose=0)
    return model


def make_all(root) -> dict:
    """Image folders of 2, 4 and 7 classes and the four models, trained an epoch and saved
    as their authors saved them; returns their paths."""
    root = str(root)
    folders = {n: pattern_folder(os.path.join(root, f"images{n}"), classes=n) for n in (2, 4, 7)}
    files = {"xception": os.path.join(root, "fer2013_mini_XCEPTION.hdf5"),
             "onet": os.path.join(root, "onet.h5"),
             "mobilenet": os.path.join(root, "mobilenet_v2_035.keras"),
             "sequential": os.path.join(root, "cnn.h5"),
             "xception_keras3": os.path.join(root, "mini_xception_keras3.keras"),
             "onet_keras3": os.path.join(root, "onet_keras3.keras")}
    author_trains(mini_xception(classes=7), folders[7]).save(files["xception"])  # Keras 2: HDF5
    author_trains(mtcnn_onet(classes=2), folders[2],
                  losses=["mse", "mse", "sparse_categorical_crossentropy"]).save(files["onet"])
    author_trains(mobilenet_v2(classes=4), folders[4]).save(files["mobilenet"])
    author_trains(old_sequential(classes=4), folders[4], scale=(-1.0, 1.0)).save(
        files["sequential"], save_format="h5")
    import keras  # Keras 3, only for its two files
    author_trains(mini_xception(classes=7, K=keras), folders[7]).save(files["xception_keras3"])
    author_trains(mtcnn_onet(classes=2, K=keras), folders[2],
                  losses=["mse", "mse", "sparse_categorical_crossentropy"]).save(
        files["onet_keras3"])
    return dict(files, folders={str(n): f for n, f in folders.items()})


if __name__ == "__main__":  # run with TF_ENABLE_ONEDNN_OPTS=0 (see the integration test)
    import json
    import sys
    print(json.dumps(make_all(sys.argv[1])))
