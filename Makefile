# `make setup` builds .venv and installs the project (editable) plus its Debian packages;
# `make test` runs CI's suite, the slow model zoo included (`make test-fast` skips it);
# `make demo` runs the default job into workdir/default.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
APT_PKGS := dataset-fashion-mnist
# The metadata writers and the client test's ImageClassifier (MediaPipe Tasks). mediapipe pins
# absl-py~=2.3, tensorflow-model-optimization 0.8 absl-py~=1.2, so pip cannot resolve both:
# mediapipe comes without its deps, and setup.py lists the ones its import needs (certifi, cv2
# as opencv-python-headless, flatbuffers); absl (its CLI and tests only), sounddevice (audio)
# and matplotlib's GUI are never imported on this path. Measured: TF-MOT's sparse tests also
# pass under absl-py 2.5.1, the fallback if a later mediapipe needs absl 2 at import.
MEDIAPIPE := mediapipe==1.2.2

.PHONY: setup test test-fast test-zoo demo clean

setup: $(STAMP)

$(STAMP): setup.py Makefile
	@bash .ci/apt-install $(APT_PKGS)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps '$(MEDIAPIPE)'
	touch $(STAMP)

# CI's suite: every test, the 80 `slow` model-zoo models (54 tf_keras, 26 Keras 3)
# included, in two pytest-xdist workers (one core each). The rest of the suite runs file by
# file (`--dist loadfile`: a file's module fixtures, such as the foreign models' files or a
# shared run, are built once, on one worker): 1,253 tests in 16-17 min in clean clones here
# (2026-12-04), 36 min 27 s in one process (2026-12-03). The zoo's independent, CPU-bound
# models are spread test by test.
# `make test-fast` skips the slow tests for quick local runs; `make test-zoo` runs
# only the zoo's slow models.
test: setup
	$(PY) -m pytest tests --ignore=tests/integration/zoo_test.py -n 2 --dist loadfile
	$(PY) -m pytest tests/integration/zoo_test.py -n 2

test-fast: setup
	$(PY) -m pytest tests -m "not slow"

test-zoo: setup
	$(PY) -m pytest tests/integration/zoo_test.py -m slow

# The default job: prune the shipped Fashion-MNIST baseline by 50% of MACs, fine-tune, export, report.
demo: setup
	$(PY) -m pipeline.main --config=configs/default.py --workdir=workdir/default

clean:
	rm -rf $(VENV) build *.egg-info
