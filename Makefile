# Two commands do everything on a fresh machine (each installs what it needs first):
#   make demo   # DW-Mesh stage on the built-in example -> outputs/infer/<date_time>/
#   make test   # the CPU test suite (no GPU, no weights)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test test-gpu clean

$(STAMP): pyproject.toml requirements/eval-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,data,eval]"
	$(BIN)/python -m pip install -q --no-deps -r requirements/eval-nodeps.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python infer.py

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# On a CUDA machine with nvdiffrast installed: the GPU-marked tests only.
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu tests/gpu

clean:
	rm -rf outputs multirun .pytest_cache
