# Two commands do everything: `make run` (the pipeline end to end) and `make test` (the test suite).
# Both set up the pinned Python 3.10 environment first (idempotent, cached; see scripts/setup_env.sh).
SHELL := /bin/bash
PY := .venv/bin/python
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONPATH := $(CURDIR)

ARGS ?=

.PHONY: setup run test test-unit test-e2e lint bench score throughput scale kubeflow-compile kubeflow-schedule-dry-run

setup:
	@bash scripts/setup_env.sh

run: setup
	$(PY) -m pipeline.run $(ARGS)

lint: setup
	$(PY) -m ruff check .

test-unit: setup
	$(PY) -m pytest -m "not e2e" -q

test-e2e: setup
	$(PY) -m pytest -m e2e -q

test: lint test-unit test-e2e

bench: setup
	$(PY) -m bench.panel --seeds 3 --json bench/results/panel.json

# TensorFlow's C++ start-up lines are hidden unless TF_CPP_MIN_LOG_LEVEL is given (environment or make's command line).
score: setup
	$(if $(filter file,$(origin TF_CPP_MIN_LOG_LEVEL)),TF_CPP_MIN_LOG_LEVEL=3) $(PY) -m batch_scoring $(ARGS)

throughput: setup
	$(PY) -m bench.throughput $(ARGS)

scale: setup
	$(PY) -m bench.scale $(ARGS)

kubeflow-compile: setup
	$(PY) -m kubeflow.runner $(ARGS)

kubeflow-schedule-dry-run: setup
	$(PY) -m kubeflow.schedule --dry-run $(ARGS)
