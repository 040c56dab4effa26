r"""ResNet-20 on CIFAR-10: train it, prune half its MACs, fine-tune, export TFLite.

  python -m pipeline.main --config=configs/resnet20_cifar10.py --workdir=/tmp/prune_r20

CIFAR-10 is downloaded by Keras (to ~/.keras/datasets) unless you have it: point
``data.dir`` at the extracted ``cifar-10-batches-py`` folder (or the folder
holding it) from https://www.cs.toronto.edu/~kriz/cifar.html:

  python -m pipeline.main --config=configs/resnet20_cifar10.py --workdir=/tmp/prune_r20 \
      --config.data.dir=/data/cifar-10-batches-py

Prune a ResNet-20 you trained already with ``--config.model.path=r20.keras``
(32x32x3 input in [0, 1], softmax over the 10 classes). The smoke run (4,000
images, one epoch each):

  python -m pipeline.main --config=configs/resnet20_cifar10.py:quick --workdir=/tmp/prune_r20_quick

The model is ``resnet20`` of models/resnet.py (He et al. 2016, section 4.2:
three stages of 16, 32 and 64 channels, three basic blocks each). The recipe
is the common CIFAR one: SGD with Nesterov momentum 0.9, batch 128, peak
learning rate 0.1 after one warm-up epoch, cosine decay over 200 epochs,
weight decay 5e-4, random flips and shifts of up to 4 pixels (the paper's
4-pixel padding and crop), 10% of the training set held out for validation
(the paper's 45k/5k split). Fine-tuning after pruning runs 30 epochs at a
tenth of the learning rate. No accuracy has been measured with it here.
"""
from configs import common

ARGS = ("quick",)


def get_config(arg=None):
    """ResNet-20 on CIFAR-10; ``arg="quick"`` shrinks it to a smoke run.

    Raises:
      ValueError: an unknown ``arg``.
    """
    common.check_arg("configs/resnet20_cifar10.py", arg, ARGS)
    c = common.config(
        model=common.model(name="resnet20", input_size=32, dropout=0.0),
        # '' downloads; else the extracted cifar-10-batches-py folder (or its parent).
        data=common.data(name="cifar10", shift=4),
        train=common.train(epochs=200, batch_size=128, lr=0.1, weight_decay=5e-4),
        # The cosine schedule ends at zero: stopping early would cut its best epochs.
        finetune=common.finetune(epochs=30, lr=0.01, weight_decay=5e-4, patience=0))
    if arg == "quick":
        common.quick(c)
        c.data.subset = 4000
        c.data.test_subset = 500
        c.train.batch_size = 32  # enough steps for BatchNorm's moving statistics to settle
    return c
