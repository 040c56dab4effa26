"""Structured (filter) pruning for Keras 3 and tf_keras models, rebuilt as narrower graphs and shipped as TFLite."""
import setuptools

setuptools.setup(
    name="keras-filter-pruning",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.10,<3.14",  # the Pythons TensorFlow 2.21 has wheels for
    # configs too: their docstrings say `from configs import default`, and an installed
    # configs/default.py finds the shipped baseline in models/weights/ beside it.
    packages=setuptools.find_packages(include=["pipeline", "pipeline.*", "models", "models.*",
                                               "configs"]),
    package_data={"models": ["weights/*.keras"]},
    install_requires=[
        "tensorflow==2.21.*",
        "tf-keras==2.21.*",
        # Keras 3: TF 2.21 requires keras>=3.12; the library's Keras 3 graph walk reads private
        # node attributes that a minor release may move, so the range stops at the newest tested.
        "keras>=3.12,<3.16",
        "tensorflow-model-optimization==0.8.*",
        "ai-edge-litert",
        "absl-py",
        "ml-collections",
        "matplotlib",  # report plots (Agg backend, no display)
        "tensorboard",  # training logs; not pulled in by tensorflow 2.21
        "numpy",
        # What `import mediapipe` needs; mediapipe itself is installed by `make setup` with
        # --no-deps (its absl-py~=2.3 pin clashes with tensorflow-model-optimization's ~=1.2).
        "certifi",
        "flatbuffers~=25.9",
        "opencv-python-headless",
    ],
    # jax: the pruned Keras 3 file is loaded and run under KERAS_BACKEND=jax (CPU build, 88 MB).
    extras_require={"test": ["pytest", "hypothesis", "pytest-timeout", "pytest-xdist",
                             "jax==0.10.*"]},
    entry_points={"console_scripts": ["prune-pipeline=pipeline.main:run"]},
)
