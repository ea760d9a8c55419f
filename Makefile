# slewdark: two commands from a fresh clone.
#   make repro   set up .venv (if missing) and run the pipeline with DVC: the product, its
#                baselines and the stress matrix (every stage but the ablation's trainings)
#   make test    set up .venv (if missing) and run the test suite
# make repro-all runs every stage of dvc.yaml (what a bare `dvc repro` does): also the
# ablation, three more UNet trainings scored by evaluate_ablation.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Stage commands call `slewdark` and `dvc`: put the venv first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro repro-all test lint bench mlflow-ui clean-venv

# The stages `make repro` ends with; DVC runs everything upstream of them.
PRODUCT_STAGES := evaluate robustness pseudomask_quality

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

repro: $(STAMP)
	dvc repro $(PRODUCT_STAGES)

repro-all: $(STAMP)
	dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks metrics
	$(BIN)/ruff format --check src tests benchmarks metrics
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

clean-venv:
	rm -rf $(VENV)
