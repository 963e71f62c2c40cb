# Two commands for a newcomer: `make run` (the inspector) and `make test` (the test suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/edge/default.yaml
ARGS ?=

.PHONY: run test bench-synth clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# A station installs onnxruntime, OpenCV and FastAPI; never torch.
$(VENV)/.edge-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[edge]"
	touch $@

# Tests exercise training too, so they need the train extra (torch from this machine's disk).
$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[edge,train,dev]"
	touch $@ $(VENV)/.edge-installed

run: $(VENV)/.edge-installed
	$(BIN)/qc edge --config $(CONFIG) $(ARGS)

test: $(VENV)/.test-installed
	NO_ALBUMENTATIONS_UPDATE=1 $(BIN)/python -m pytest $(ARGS)

clean-venv:
	rm -rf $(VENV)
