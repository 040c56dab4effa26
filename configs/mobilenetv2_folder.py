r"""MobileNetV2 on your own image folder at 224 px: train (or load), prune half its MACs, export.

Your images go in class folders, ``DIR/train/<class>/*`` and
``DIR/test/<class>/*`` (or ``DIR/<class>/*``, a seeded 20% becoming the test
split); they are resized to 224x224 RGB and held in memory. ``data.dir`` has
no default: pass it.

  python -m pipeline.main --config=configs/mobilenetv2_folder.py \
      --config.data.dir=/path/to/images --workdir=/tmp/prune_mnv2

To prune a MobileNetV2 you trained already (a .keras/.h5/SavedModel taking
224x224x3 images in [0, 1] and ending in a softmax over your classes), skip
the training with ``--config.model.path=/path/to/model.keras``.

The smoke run (96 px, width 0.35, at most 400 images, one epoch each, no
sensitivity scan):

  python -m pipeline.main --config=configs/mobilenetv2_folder.py:quick \
      --config.data.dir=/path/to/images --workdir=/tmp/prune_mnv2_quick

The model is ``tf_keras.applications.MobileNetV2`` (the ImageNet network,
stride-2 stem, built untrained, ``model.width`` its ``alpha``), not the small
``mobilenetv2`` of models/, which keeps a stride-1 stem for 28-64 px inputs.
The training recipe follows the paper's (Sandler et al. 2018) for a data set
of a few thousand images trained from scratch on a CPU: SGD with Nesterov
momentum, weight decay 4e-5, label smoothing 0.1, cosine decay after two
warm-up epochs; no accuracy has been measured with it here.
"""
from configs import common

ARGS = ("quick",)


def get_config(arg=None):
    """MobileNetV2 on ``--config.data.dir``; ``arg="quick"`` shrinks it to a smoke run.

    Raises:
      ValueError: an unknown ``arg``.
    """
    common.check_arg("configs/mobilenetv2_folder.py", arg, ARGS)
    c = common.config(
        # tf_keras.applications.MobileNetV2 has no dropout option.
        model=common.model(name="MobileNetV2", input_size=224, channels=3, dropout=0.0),
        data=common.data(name="folder", shift=16),  # +-16 px: about 7% of the side
        # Batch 64 of 224x224x3 float32 images is 38 MB, small enough for a CPU host.
        train=common.train(epochs=60, batch_size=64, lr=0.05, weight_decay=4e-5,
                           warmup_epochs=2.0, label_smoothing=0.1),
        finetune=common.finetune(epochs=10, lr=0.005, weight_decay=4e-5, patience=3),
        # Each point of the scan evaluates the whole network on validation images: at
        # 224 px fewer ratios and batches keep it to minutes on a CPU.
        sensitivity=common.sensitivity(ratios=(0.25, 0.5, 0.75), max_batches=8),
        # A bounded sparse fine-tune: a full epoch of a large folder at 224 px takes long.
        export=common.export(sparse_steps=300))
    if arg == "quick":
        common.quick(c)
        c.model.input_size = 96
        c.model.width = 0.35
        c.data.shift = 6
        c.data.subset = 400
        c.data.test_subset = 100
        c.train.batch_size = 16  # a smaller folder still holds several batches
        # Its 25 groups at 2 ratios took about 8 s a point here (7 minutes); the
        # default's quick run exercises the scan.
        c.sensitivity.enabled = False
    return c
