# EmoNet: `make demo` runs the pipeline on bundled sample clips, `make test` runs the tests.
# Both create .venv and install everything first (ffmpeg comes from the imageio-ffmpeg wheel).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: all install test test-fast demo demo-train bench clean

all: install

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import preprocessing.media as m; print('ffmpeg:', m.ffmpeg_binary())"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

demo: $(STAMP)
	@echo "== 1/2 predict: the shipped model emonet-base on the six bundled CREMA-D clips (face + voice) and two photos"
	$(BIN)/emonet predict tests/data/crema_d/*.flv tests/data/stills/*.jpg --no-progress
	@echo "== 2/2 evaluate: the same clips against their labels (the CREMA-D file names: ANG, DIS, FEA, HAP, NEU, SAD)"
	$(BIN)/emonet evaluate --data tests/data/crema_d --layout crema_d --out $(DEMO_OUT)/emonet-base_crema_d
	@echo "Done. emonet-base was trained on other people (MODEL_CARD.md); results: $(DEMO_OUT)/emonet-base_crema_d"

demo-train: $(STAMP)
	@echo "== a plumbing check of training: extract, train, evaluate and predict on the six bundled clips"
	mkdir -p $(DEMO_OUT)
	$(BIN)/emonet extract tests/data/crema_d --layout crema_d --out $(DEMO_OUT)/crema_d_features.h5 --workers 2
	$(BIN)/emonet train experiments/demo_crema_d.yaml --overwrite
	$(BIN)/emonet predict tests/data/crema_d/*.flv --model $(DEMO_OUT)/demo_crema_d-seed0 --submission $(DEMO_OUT)/submission

bench: $(STAMP)
	$(BIN)/python experiments/bench_extract.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
