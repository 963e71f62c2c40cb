# Two commands for a newcomer: `make run` (the inspector) and `make test` (the test suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/edge/default.yaml
ARGS ?=

.PHONY: run test default-model clean-venv

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

# How models/default/$(DEFAULT_VERSION) was made (its model.json records the train and export
# commands). Needs the train extra: `make test` installs it.
# The simulated line shows whole panels on a belt, so the default model sees many of them, and it
# may train longer than a fabric onboarding (its data spans ten fabrics and seams).
DEFAULT_VERSION ?= 0.2.0
default-model: $(VENV)/.test-installed
	rm -rf var/synth-default runs/default models/default/$(DEFAULT_VERSION)
	$(BIN)/qc synth --out var/synth-default --count 200 --seed 0 --panels 200
	$(BIN)/qc train --config configs/train/default.yaml --data var/synth-default --out runs/default optim.time_budget_s=480 optim.steps=4000
	$(BIN)/qc export runs/default --out models/default/$(DEFAULT_VERSION)
	$(BIN)/qc eval models/default/$(DEFAULT_VERSION) --data var/synth-default --record
