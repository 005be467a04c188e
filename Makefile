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
	$(BIN)/python experiments/demo.py --out $(DEMO_OUT)

bench: $(STAMP)
	$(BIN)/python experiments/bench_extract.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
