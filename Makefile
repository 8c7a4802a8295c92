# `make install` builds .venv with every dependency; `make test` and `make serve` do so on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: install test lint typecheck browser serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Veil needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# MTCNN's weights (MIT) for the face verifier, without the package's dependencies: they pull in torch.
	$(BIN)/python -m pip install --quiet --no-deps 'facenet-pytorch>=2.6'
	# INT8 copies of the detection networks, derived from the packaged weights (about two minutes). Without
	# them the detectors run their FP32 weights, so a failure here is reported, not fatal.
	$(BIN)/veil models derive || echo "INT8 models not derived; FP32 will run (see: veil doctor)"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# The web app's browser tests drive Debian's Chromium: as root, install it (without the recommended
# packages, which a headless browser does not need), saying so first; otherwise say how.
CHROMIUM_INSTALL := apt-get install -y --no-install-recommends chromium

browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing Chromium for the browser tests ($(CHROMIUM_INSTALL))..."; \
		$(CHROMIUM_INSTALL) || { apt-get update && $(CHROMIUM_INSTALL); }; \
	else \
		echo "The browser tests need Chromium at $(CHROMIUM); install it with: sudo $(CHROMIUM_INSTALL)"; \
	fi

# The browser first, so that what needs installing is said and done before the long steps.
test: browser lint typecheck
	$(BIN)/pytest

serve: install
	$(BIN)/veil serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
