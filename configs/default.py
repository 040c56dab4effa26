r"""Train a VGG-style CNN on Fashion-MNIST, prune half its MACs, fine-tune, export TFLite.

Run it (the shipped baseline is pruned, fine-tuned and exported; see README for
the measured time; the ":quick" smoke run trains its own baseline at width 0.75
on 15,000 images without augmentation, 87.4-90.5% test accuracy before and after
pruning over 4 seeds, in 1 min 51 s alone here; see BENCHMARKS.md, "The quick run"):

  python -m pipeline.main --config=configs/default.py --workdir=/tmp/prune_fmnist
  python -m pipeline.main --config=configs/default.py:quick --workdir=/tmp/prune_quick

Override any key from the command line; a misspelt key is an error:

  python -m pipeline.main --config=configs/default.py --workdir=/tmp/prune_fmnist \
      --config.prune.ratio=0.6 --config.finetune.distill=True

Rerunning with the same workdir skips every stage whose output exists with a
matching config hash (changing only ``prune.*`` retrains nothing); pass
``--restart`` to redo all. An interrupted training resumes from its last
finished epoch.

The default prunes the baseline shipped in models/weights/vgg_fashion_mnist.keras
(test accuracy 93.45%). It was trained, and is reproduced, by:

  python -m pipeline.main --config=configs/default.py --config.model.path= \
      --workdir=/tmp/train_fmnist
  cp /tmp/train_fmnist/baseline.keras models/weights/vgg_fashion_mnist.keras

Recipe behind the >= 93% baseline: SGD with Nesterov momentum 0.9, peak
learning rate 0.05 after one warm-up epoch, cosine decay to zero over 12
epochs, weight decay 5e-4, batch 128, random horizontal flips and shifts of
up to 2 pixels, 10% of the training set held out for validation.
Measured (November 2026, seed 0, 2 cores shared with other jobs, load
average 3-4): baseline test accuracy 93.45% (val 93.87%) after 686 s of
training at 40-66 s per epoch; pruned by 50% of MACs with global L1, 15.2%
before and 92.88% after 3 fine-tuning epochs (205 s); TFLite fp32 accuracy
equal to Keras for both; 15 min 15 s for the whole run. On an idle machine an
epoch takes 30-40 s (75-100 ms per step), about 10-11 minutes in all.

Determinism: ``seed`` fixes the weight initialisation, the subset and
validation split, the shuffling order and the augmentation (a sequential
map, so its random stream keeps one order). Two quick runs here gave
bit-identical baseline weights, but TensorFlow does not promise that its
multi-threaded CPU kernels sum in a fixed order, so expect reruns to agree
to a few tenths of a percent, not bit for bit, unless ``deterministic=True``
(TensorFlow's op determinism: slower, bit-identical on the same machine and
TensorFlow build).
"""
import os

from configs import common

ARGS = ("quick",)
SHIPPED_BASELINE = os.path.join(common.WEIGHTS_DIR, "vgg_fashion_mnist.keras")


def get_config(arg=None):
    """The default config; ``arg="quick"`` shrinks it to a smoke run.

    Raises:
      ValueError: an unknown ``arg``.
    """
    common.check_arg("configs/default.py", arg, ARGS)
    # Fine-tuning 4 epochs at lr 0.03 rather than the common 3 at 0.01: over seeds 0-2,
    # 93.18% (median; 93.15-93.22%) against 92.93% at 50% fewer MACs, 92.61% against 92.31%
    # at 75% (baseline 93.45%); 3 epochs at 0.03 gave 93.05% and 92.60%, lr 0.05, 0.02,
    # weight decay 1e-4, L2 and distillation were no better (BENCHMARKS.md, "The default
    # run over 3 seeds").
    c = common.config(model=common.model(path=SHIPPED_BASELINE),
                      finetune=common.finetune(lr=0.03, epochs=4))
    if arg == "quick":
        common.quick(c)
        c.model.path = ""  # the smoke run exercises training too
        # Enough training for the smoke run to look like the real thing (>= 85% baseline,
        # >= 80% pruned) in under 2 minutes; measured in BENCHMARKS.md, "The quick run".
        c.data.subset = 15000
        c.data.test_subset = 1000
        c.train.batch_size = 64
        c.train.epochs = 2
        c.train.warmup_epochs = 0.2
        c.model.width = 0.75  # 24-96 channels, 0.56x the MACs: 87.0% here, 86.6% at 1.0
        # 420 steps underfit; flips and shifts held the baseline at 84.8-87.3% over 4 runs
        # (3 seeds, one CI machine), close to the 85% bar; without them 87.9-90.5% (4 seeds).
        c.data.flip = False
        c.data.shift = 0
    return c
