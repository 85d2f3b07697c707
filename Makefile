# `make demo` and `make test` set everything up from a bare Python 3.11 and then run.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := codes,consume,dev,ray
# CPU build of torch on machines without an NVIDIA driver; the default (CUDA) build where one is present.
TORCH_SPEC ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch<=2.14.1,torch==2.13.0)
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	@touch $@

demo: setup
	$(BIN)/datakit run recipes/radiology-coding.toml --out runs/radiology-coding
	$(BIN)/datakit verify runs/radiology-coding/shards
	$(BIN)/datakit inspect runs/radiology-coding/shards
	@echo "shards are in runs/radiology-coding/shards (dataset card: runs/radiology-coding/shards/README.md)"

test: setup lint
	@bash .ci/ensure-postgres.sh
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check datakit tests bench docs
	$(BIN)/ruff format --check datakit tests bench docs
	$(BIN)/mypy

# The docs site: reference pages generated from the code and bench/results/, then mkdocs-material (docs/site/).
docs: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[docs]"
	$(BIN)/python docs/gen.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --quiet -f docs/mkdocs.yml

bench: setup
	$(BIN)/python bench/e2e.py --n 5000 --n 50000

clean:
	rm -rf $(VENV) runs docs/site .pytest_cache .mypy_cache .ruff_cache
