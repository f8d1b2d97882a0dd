# `make test` builds the local environment when it is missing (virtual environment, torch,
# the ComfyUI host, requirements) and runs the whole test suite. COMFYUI_PATH=/path/to/ComfyUI
# runs the same suite against another host checkout.
PYTHON ?= python3
VENV ?= .venv
export RERENDER_VENV := $(abspath $(VENV))
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
