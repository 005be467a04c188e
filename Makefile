# EmoNet: `make demo` runs the pipeline on bundled sample clips, `make test` runs the tests.
# Both create .venv and install everything first (ffmpeg comes from the imageio-ffmpeg wheel).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: all install test test-fast demo bench clean

all: install

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools>=68" wheel
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import preprocessing.media as m; print('ffmpeg:', m.ffmpeg_binary())"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

demo: $(STAMP)
	@echo "== 1/4 extract: bundled CREMA-D clips -> HDF5 feature store"
	mkdir -p $(DEMO_OUT)
	$(BIN)/emonet extract tests/data/crema_d --layout crema_d --out $(DEMO_OUT)/crema_d_features.h5 --workers 2
	@echo "== 2/4 train + 3/4 evaluate: experiments/demo_crema_d.yaml (a plumbing check on 6 clips, not a benchmark)"
	$(BIN)/emonet train experiments/demo_crema_d.yaml --overwrite
	@echo "== 4/4 predict: classify the clips with the trained run"
	$(BIN)/emonet predict tests/data/crema_d/*.flv --model $(DEMO_OUT)/demo_crema_d-seed0 --submission $(DEMO_OUT)/submission
	@echo "Done. Run folder: $(DEMO_OUT)/demo_crema_d-seed0 (metrics.json, confusion_matrix.png, training_curves.png)"

bench: $(STAMP)
	$(BIN)/python experiments/bench_extract.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
