# `make test` builds the local environment when it is missing (virtual environment, torch,
# the ComfyUI host, requirements) and runs the whole test suite on the 2024 host;
# `make test HOST=current` runs it on current ComfyUI (v0.3.64, copied from ../shared/hosts).
# COMFYUI_PATH=/path/to/ComfyUI runs the same suite against another host checkout.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 2024
export RERENDER_VENV := $(abspath $(VENV))
export RERENDER_HOST := $(HOST)
PYTEST_ARGS ?=

.PHONY: env test demo

env:
	$(PYTHON) scripts/bootstrap_env.py

test: env
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The README's demo: `make demo`, or `make demo DEMO_ARGS="--video clip.mp4 [--checkpoint ... --controlnet ...]"`.
DEMO_ARGS ?=
demo: env
	$(VENV)/bin/python scripts/demo.py $(DEMO_ARGS)
