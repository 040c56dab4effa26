"""One builder per config section, holding its keys, their defaults and what they mean.

A config a user starts from (``configs/default.py``, ...) composes these and
changes what its model and data need; the defaults are those of the shipped
VGG on Fashion-MNIST, except that :func:`model` trains from scratch
(``path=''``) unless a config names a trained model. Each builder takes
keyword overrides of its own keys; a key it does not have is an error, as
``--config.<key>`` would be.

Example:
  >>> from configs import common
  >>> c = common.config(model=common.model(name="resnet20", input_size=32))
  >>> c.model.name, c.prune.ratio, c.evaluate.latency_threads
  ('resnet20', 0.5, (1, 2))
"""
import os

import ml_collections

WEIGHTS_DIR = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "models", "weights"))


def check_arg(config_file: str, arg, args) -> None:
    """Rejects a ``get_config`` argument that ``config_file`` does not take.

    Args:
      config_file: the config's path as a user types it, e.g. ``configs/default.py``.
      arg: what came after the ``:`` of ``--config=<file>:<arg>`` (None or '' if nothing).
      args: the arguments the config takes, e.g. ``("quick",)``.

    Raises:
      ValueError: ``arg`` is none of ``args``.
    """
    if arg not in (None, "", *args):
        raise ValueError(f"{config_file} takes no argument or one of {tuple(args)}, got {arg!r}")


def config(**sections) -> ml_collections.ConfigDict:
    """A whole config: every section at its defaults, or as given in ``sections``.

    Args:
      **sections: section name -> ConfigDict replacing that section's
        defaults, e.g. ``model=model(name="resnet20")``.

    Raises:
      TypeError: a section name that no builder makes.
    """
    builders = {"model": model, "data": data, "train": train, "prune": prune,
                "finetune": finetune, "sensitivity": sensitivity, "export": export,
                "evaluate": evaluate}
    _check_keys("config", sections, builders)
    c = base()
    for name, builder in builders.items():
        c[name] = sections[name] if name in sections else builder()
    return c


def base(**overrides) -> ml_collections.ConfigDict:
    """The run-wide keys: ``seed``, ``deterministic`` and ``distribute``."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.deterministic = False
    # Training strategy: none, mirrored (all local devices) or multi_worker (the processes in
    # TF_CONFIG; see README "Fine-tuning on several workers" and pipeline/training/distribute.py).
    c.distribute = "none"
    return _apply("base", c, overrides)


def model(**overrides) -> ml_collections.ConfigDict:
    """``config.model``: what to prune (a trained file) or what to train first."""
    m = ml_collections.ConfigDict()
    m.name = "vgg"  # see models.names(); any tf_keras.applications name works too
    # A trained .keras/.h5/SavedModel to prune; '' trains model.name with config.train.
    m.path = ""
    # Images are resized to input_size and converted to channels (1 or 3: grayscale <-> RGB).
    # 0 = the model file's declared input with model.path, else the data's own.
    m.input_size = 0
    m.channels = 0
    # The Keras model.name is built and trained in, the whole run then staying in it: tf_keras
    # (Keras 2) or keras (Keras 3, TensorFlow backend). With model.path the file's own Keras
    # decides (read from its metadata) and this key is not used.
    m.keras = "tf_keras"
    m.width = 1.0  # channel multiplier
    m.dropout = 0.3
    # What the model's input is: (pixel - mean) / std on 0-255 RGB pixels. unit [0, 1],
    # symmetric [-1, 1], imagenet_caffe (BGR, mean subtracted), imagenet_torch, or
    # mean_std with model.mean and model.std (1 or 3 values, RGB, pixel units). Training,
    # evaluation, int8 calibration, parity checks and the TFLite metadata all follow it;
    # see pipeline/data/preprocess.py and README "Input preprocessing".
    m.preprocess = "unit"
    m.mean = ()  # model.preprocess=mean_std only, e.g. "(127.5,)"
    m.std = ()
    # A multi-head model's classifier output (its layer name): the head the labels train and
    # the accuracy is read from. '' = the output of the data's class count (softmax if
    # several); see README "Multi-head models" and pipeline/training/heads.py.
    m.output = ""
    return _apply("model", m, overrides)


def data(**overrides) -> ml_collections.ConfigDict:
    """``config.data``: the data set, its subsets and the training augmentation."""
    d = ml_collections.ConfigDict()
    d.name = "fashion_mnist"  # fashion_mnist, cifar10 or folder
    d.dir = ""  # '' = /usr/share/datasets/fashion-mnist, else a download
    d.val_split = 0.1
    d.subset = 0  # training examples kept (0 = all)
    d.test_subset = 0  # test examples kept (0 = all)
    d.flip = True  # horizontal flips suit clothing, not digits or text
    d.shift = 2  # random translation, pixels
    # Image files (data.name=folder) are decoded into memory once when their pixels fit
    # this many MiB (training images counted twice, for the shuffle buffer), else streamed
    # from disk every epoch; see README, "Your own images".
    d.memory_mb = 1024
    return _apply("data", d, overrides)


def train(**overrides) -> ml_collections.ConfigDict:
    """``config.train``: how the baseline is trained when ``model.path`` is ''."""
    t = ml_collections.ConfigDict()
    t.epochs = 12
    t.batch_size = 128
    t.optimizer = "sgd"  # sgd (Nesterov), adam or adamw
    t.lr = 0.05
    t.momentum = 0.9
    t.weight_decay = 5e-4
    t.warmup_epochs = 1.0
    t.label_smoothing = 0.0
    t.patience = 0  # early stopping on val accuracy (0 = off)
    t.jit_compile = False  # XLA measured no faster on this CPU
    # Training batches the BatchNorm moving statistics are re-estimated on once training
    # ends (0 = keep the moving averages, which lag behind the weights after a short run).
    t.bn_recalibrate_batches = 50
    return _apply("train", t, overrides)


def prune(**overrides) -> ml_collections.ConfigDict:
    """``config.prune``: how much, by which criterion, and the latency target's settings."""
    p = ml_collections.ConfigDict()
    # Fraction of prune.target removed; a tuple, e.g. --config.prune.ratio='(0.3, 0.5, 0.7)',
    # makes one pruned model per ratio from one baseline (pipeline/run/family.py). Typed
    # object so that both --config.prune.ratio=0.5 and the tuple parse.
    p.ratio = ml_collections.FieldReference(0.5, field_type=object)
    p.target = "macs"  # macs, filters or latency (LiteRT, 1-thread edge profile)
    p.criterion = "l1"  # l1, l2, bn_gamma, fpgm, taylor, random
    p.scope = "global"  # global or layer
    # "auto": each group keeps widths on its speed steps (multiples of 32 on groups of 64+
    # channels, 16/8/4/1 on narrower ones, finer when the target needs it; a latency table
    # cached in <workdir>/latency_tables/ is read when there is one); an integer keeps
    # multiples of it. See BENCHMARKS.md, "round_to=auto". Typed object so that both
    # --config.prune.round_to=auto and --config.prune.round_to=16 parse.
    p.round_to = ml_collections.FieldReference("auto", field_type=object)
    p.min_filters = 1
    p.ignore = ()  # layer names or fnmatch patterns left whole
    # prune.target=latency: per-layer latency table (cached in <workdir>/latency_tables/),
    # greedy allocation, then rebuild and measure until within tolerance of the budget.
    p.latency = ml_collections.ConfigDict()
    p.latency.table = ""  # a table JSON measured on a device ('' = measure on this host)
    p.latency.tolerance = 0.05  # measured latency within this fraction of the budget
    p.latency.max_iterations = 4  # allocate-rebuild-measure rounds
    p.latency.utility = "log"  # importance kept: log (diminishing per group) or sum (HALP)
    return _apply("prune", p, overrides)


def finetune(**overrides) -> ml_collections.ConfigDict:
    """``config.finetune``: recovering accuracy after pruning, optionally by distillation."""
    f = ml_collections.ConfigDict()
    f.epochs = 3
    f.optimizer = "sgd"
    f.lr = 0.01
    f.momentum = 0.9
    f.weight_decay = 5e-4
    f.warmup_epochs = 0.0
    f.patience = 2
    f.distill = False  # distil from the unpruned baseline
    f.temperature = 4.0
    f.alpha = 0.5  # weight of the distillation term
    # Prune-then-fine-tune steps; their MAC (or filter) ratios compound to prune.ratio,
    # each step fine-tuning finetune.epochs (see pipeline.run.stages.prune_and_finetune).
    f.iterations = 1
    # Training batches the BatchNorm moving statistics are re-estimated on, after pruning
    # and after fine-tuning (0 = keep the moving averages); see BENCHMARKS.md, "BatchNorm
    # re-estimation", for what it gained.
    f.bn_recalibrate_batches = 50
    return _apply("finetune", f, overrides)


def sensitivity(**overrides) -> ml_collections.ConfigDict:
    """``config.sensitivity``: validation accuracy with each prunable group narrowed alone,
    no fine-tuning."""
    s = ml_collections.ConfigDict()
    s.enabled = True
    s.ratios = (0.1, 0.3, 0.5, 0.7, 0.9)  # fractions of a group's channels removed
    s.max_batches = 0  # validation batches read per point (0 = the whole split)
    return _apply("sensitivity", s, overrides)


def export(**overrides) -> ml_collections.ConfigDict:
    """``config.export``: which ``.tflite`` files are written and how each is verified."""
    e = ml_collections.ConfigDict()
    # See pipeline.export.variants.variant_names(); every file is verified against its Keras model.
    # A tuple, so that it can be overridden: --config.export.variants="('pruned_fp32',)".
    e.variants = ("baseline_fp32", "pruned_fp32", "pruned_int8", "pruned_2of4",
                  "pruned_block_fc", "pruned_fp16", "pruned_dynamic_int8")
    e.int8_input = "uint8"  # pruned_int8's input/output type: uint8 (Task Library) or int8
    e.calibration_samples = 200  # training images calibrating pruned_int8
    # Sparsity-aware fine-tune of pruned_2of4 and pruned_block_fc (TF-MOT, on a copy).
    e.sparse_epochs = 1
    e.sparse_steps = 0  # steps per sparse epoch (0 = a full epoch of the training split)
    e.sparse_lr = 1e-4  # Adam
    e.block_sparsity = 0.8  # fraction of 1x4 blocks zeroed in pruned_block_fc's Dense kernels
    # Parity of each .tflite with its Keras model on validation images.
    e.verify_examples = 256
    e.float_rtol = 1e-4  # max |tflite - keras| / max |keras| for float variants (pruned_fp16: 1e-2)
    e.int8_min_agreement = 0.99  # top-1 agreement for integer variants and pruned_dynamic_int8
    # TFLite metadata (Task Library / Android Studio ML Model Binding); '' = generated.
    e.metadata = ml_collections.ConfigDict()
    e.metadata.name = ""  # '' = <model.name>_<variant>
    e.metadata.description = ""
    e.metadata.version = "1"
    e.metadata.author = "keras-filter-pruning pipeline"
    e.metadata.license = "unspecified (set --config.export.metadata.license)"
    return _apply("export", e, overrides)


def evaluate(**overrides) -> ml_collections.ConfigDict:
    """``config.evaluate``: each exported file's LiteRT latency (its accuracy on the test
    split is always measured).

    A section of its own so that changing how files are timed never
    invalidates the files themselves (the export stage's hash).
    """
    v = ml_collections.ConfigDict()
    v.latency_threads = (1, 2)  # LiteRT latency per thread count; () = skip
    v.latency_min_secs = 1.0  # time each thread count at least this long
    return _apply("evaluate", v, overrides)


def quick(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks ``c`` in place to a smoke run: one epoch each, fewer sensitivity and
    export samples, short timing. The data subset and batch size stay the config's own
    (they depend on its data set).

    Returns:
      ``c``.
    """
    c.train.epochs = 1
    c.train.warmup_epochs = 0.0
    c.finetune.epochs = 1
    c.sensitivity.ratios = (0.3, 0.7)
    c.sensitivity.max_batches = 4
    c.evaluate.latency_threads = (1,)
    c.evaluate.latency_min_secs = 0.1
    c.export.calibration_samples = 100
    c.export.sparse_steps = 10
    c.export.verify_examples = 128
    # A short training leaves logits close together, so int8 rounding can flip a few of
    # 128 top-1 answers (3 when the default's quick run trained one epoch on 4,000
    # images); the full configs keep the 99% bar.
    c.export.int8_min_agreement = 0.95
    return c


def _apply(name: str, section: ml_collections.ConfigDict, overrides: dict):
    _check_keys(name, overrides, section)
    section.update(overrides)
    return section


def _check_keys(name: str, given, known) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TypeError(f"configs.common.{name}() has no key {', '.join(unknown)}; "
                        f"it has: {', '.join(sorted(known))}")
