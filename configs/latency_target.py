r"""The default VGG on Fashion-MNIST pruned to half its measured latency, not its MACs.

``prune.ratio`` is the share of the model's measured latency to remove
(``prune.target="latency"``; see README, "Pruning to a latency budget"). By
default the per-layer latency table is measured on this host (LiteRT, one
thread, XNNPACK) and cached in ``<workdir>/latency_tables/``:

  python -m pipeline.main --config=configs/latency_target.py --workdir=/tmp/prune_latency

To prune for a phone, measure the table there and pass it. Export the grid of
single-layer models from the model you will prune (here the shipped baseline),
time each on the device with one thread, and assemble the logs into a table:

  python -m pipeline.latency.grid export --model=models/weights/vgg_fashion_mnist.keras \
      --out_dir=grid --round_to=16
  # for each grid/*.tflite (grid/model.tflite too), on the device, 1 thread:
  python -m pipeline.android run --tflite=grid/F.tflite --benchmark_binary=benchmark_model \
      --threads=1 --out_dir=grid
  python -m pipeline.latency.grid assemble --out_dir=grid --device=pixel7 --table=pixel7.json

  python -m pipeline.main --config=configs/latency_target.py --workdir=/tmp/prune_pixel7 \
      --config.prune.latency.table=pixel7.json

Give ``grid export`` the same ``--round_to``, ``--min_filters`` and ``--ignore``
as ``prune.*`` (this config's ``round_to`` is 16): they set the narrowest width
each layer's grid reaches.
The smoke run trains its own tiny baseline and measures its table on this host:

  python -m pipeline.main --config=configs/latency_target.py:quick --workdir=/tmp/latency_quick
"""
from configs import common
from configs import default

ARGS = ("quick",)


def get_config(arg=None):
    """configs/default.py with ``prune.target="latency"``; ``arg="quick"`` shrinks it.

    Raises:
      ValueError: an unknown ``arg``.
    """
    common.check_arg("configs/latency_target.py", arg, ARGS)
    c = default.get_config(arg)
    c.prune.target = "latency"
    c.prune.round_to = 16  # the grid's narrowest widths (`grid export --round_to=16` above)
    c.prune.latency.table = ""  # a device table JSON ('' = measure on this host)
    return c
