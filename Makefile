# Two commands do everything on a fresh machine (each installs what it needs first):
#   make demo   # DW-Mesh stage on the built-in example -> outputs/infer/<date_time>/
#   make test   # the CPU test suite's default tier (no GPU, no weights, no slow tests)
#   make test-slow  # the slow tier (installs Debian's chromium for the app's browser test); make test-all = both
#   make app    # the interactive app on http://127.0.0.1:7860
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

# The app's browser test drives Debian's chromium at this path (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium

.PHONY: install demo test test-gpu clean app chromium

$(STAMP): pyproject.toml requirements/eval-nodeps.txt requirements/app-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,data,eval,app]"
	$(BIN)/python -m pip install -q --no-deps -r requirements/eval-nodeps.txt -r requirements/app-nodeps.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python infer.py

app: $(STAMP)
	$(BIN)/python app.py

# Debian's chromium for the browser test, installed only when missing (apt-get, as root). Where it cannot be
# installed, the test suite still runs and the browser test fails saying what is missing.
chromium:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "make: could not install chromium (apt-get install chromium, as root); the browser test will fail"

# The default tier: everything but gpu / weights / slow (about 7 min on a fresh clone, install included).
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The slow tier (subprocess CLIs, multirun, torchrun, the browser test, real metric networks): .ci/run runs it too.
test-slow: $(STAMP) chromium
	EX4D_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q -m "slow and not gpu and not weights" $(PYTEST_ARGS)

test-all: test test-slow

# On a CUDA machine with nvdiffrast installed: the GPU-marked tests only.
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu tests/gpu

clean:
	rm -rf outputs multirun .pytest_cache
