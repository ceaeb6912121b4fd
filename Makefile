# Nudge recommender: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DATA ?= data/generated/default

.DEFAULT_GOAL := help
.PHONY: help install demo demo-check test test-all lint format bench bench-serve clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with dev tools

demo: install ## Simulate, train, promote, then serve the API (:8000) and MLflow UI (:5000); Ctrl-C stops
	OMP_NUM_THREADS=1 $(BIN)/recommender demo --data $(DEMO_DATA)

demo-check: install ## The main job without starting servers (simulate, validate, train, promote)
	$(BIN)/recommender demo --data $(DEMO_DATA) --no-serve

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Apply ruff formatting and autofixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint ## Lint, then the fast test suite (what CI runs)
	$(BIN)/python -m pytest -q

test-all: lint ## Lint, then every test including the slow ones
	$(BIN)/python -m pytest -q -m ''

bench: install ## Run every benchmark (slow, tens of minutes; figures go to benchmarks/results/)
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_uplift.py
	$(BIN)/python benchmarks/bench_train.py
	$(MAKE) bench-serve

BENCH_SERVE := $(abspath data/generated/bench-serve)
bench-serve: install ## Ranking API vs `mlflow models serve` of the same freshly trained model
	test -f $(BENCH_SERVE)/data/managers.parquet || \
	  $(BIN)/recommender simulate --out $(BENCH_SERVE)/data --managers 4000 --seed 15
	test -f $(BENCH_SERVE)/trained || { MLFLOW_TRACKING_URI=sqlite:///$(BENCH_SERVE)/mlflow.db \
	  $(BIN)/recommender train --data $(BENCH_SERVE)/data && touch $(BENCH_SERVE)/trained; }
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_serve.py \
	  --tracking-uri sqlite:///$(BENCH_SERVE)/mlflow.db --model-uri models:/nudge-ranker@champion

clean: ## Remove the environment and generated files
	rm -rf $(VENV) data/generated mlruns mlflow.db .pytest_cache .mypy_cache .ruff_cache
