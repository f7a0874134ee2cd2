# gato_ros — the two commands a newcomer runs: `make demo` and `make test`.
# Both set up .venv from the pinned requirements first (once; again when they change).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Headless MuJoCo rendering; keep Fast DDS discovery on this host.
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup demo test test-fast bench train-stack clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: setup
	$(VENV)/bin/gato-ros demo

test: setup
	$(PY) -m pytest test

test-fast: setup
	$(PY) -m pytest test -m "not slow"

bench: setup
	$(VENV)/bin/gato-ros bench engine --preset tiny
	$(VENV)/bin/gato-ros bench safety --robot ur5e
	$(VENV)/bin/gato-ros bench train --preset tiny

# The learning recipe, from nothing to checkpoints/gato-stack (docs/learning.md); resumable: run it again.
train-stack: setup
	$(VENV)/bin/gato-ros recipe --out runs/recipe-stack --export checkpoints/gato-stack

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
