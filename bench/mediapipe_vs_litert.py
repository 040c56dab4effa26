"""A finished run's files through MediaPipe Tasks' ImageClassifier beside LiteRT.

For each variant of ``--workdir``'s report.json with status ``ok``, the first
``--images`` Fashion-MNIST test images go to MediaPipe as raw R, G, B pixels
(``pipeline.litert.mediapipe_client``, everything else from the file's
metadata) and to LiteRT through the pipeline (``pipeline.litert.accuracy``);
prints both top-1 accuracies, the per-image top-1 agreement, and whether
MediaPipe's label names are the run's labels.txt at its indices.

Usage:
  .venv/bin/python bench/mediapipe_vs_litert.py --workdir=/tmp/B17_quick --images=2000
"""
import json
import os
import time

from absl import app, flags

flags.DEFINE_string("workdir", None, "A finished run's workdir.", required=True)
flags.DEFINE_integer("images", 2000, "Test images (the first of the test split).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import numpy as np

    from pipeline.data import datasets as data
    from pipeline.export import parity
    from pipeline.litert import accuracy, mediapipe_client

    report = json.load(open(os.path.join(FLAGS.workdir, "report.json")))
    labels = open(os.path.join(FLAGS.workdir, "tflite", "labels.txt")).read().splitlines()
    splits = data.make_datasets("fashion_mnist", batch_size=250, val_split=0.1, subset=1000,
                                test_subset=FLAGS.images, seed=0)
    batches = [(np.asarray(x), np.asarray(y)) for x, y in splits.test]
    images, truth = (np.concatenate(part) for part in zip(*batches))
    truth = truth.reshape(-1)
    pixels = np.round(images * 255).astype(np.uint8)
    assert np.array_equal(pixels / np.float32(255), images)
    print(f"{'variant':<20} {'LiteRT':>7} {'MediaPipe':>9} {'agree':>7} {'names':>5} {'s':>5}")
    for variant in report["variants"]:
        if variant.get("status", "ok") != "ok":
            continue
        path = os.path.join(FLAGS.workdir, "tflite", f"{variant['name']}.tflite")
        litert = accuracy.tflite_accuracy(path, [(images, truth)])["accuracy"]
        litert_top1 = np.argmax(parity.tflite_outputs(path, images)[0], axis=-1)
        start = time.time()
        results = mediapipe_client.classify(path, pixels)
        seconds = time.time() - start
        top1 = np.array([i for i, _ in results])
        names = all(name == labels[i] for i, name in results)
        print(f"{variant['name']:<20} {litert:>7.4f} {np.mean(top1 == truth):>9.4f} "
              f"{np.mean(top1 == litert_top1):>7.2%} {str(names):>5} {seconds:>5.1f}")


if __name__ == "__main__":
    app.run(main)
