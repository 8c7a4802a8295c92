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
	touch $(STAMP)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# The web app's browser tests drive Debian's Chromium; install it as root, else say how.
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; \
	else \
		echo "The browser tests need Chromium at $(CHROMIUM); install it with: sudo apt-get install -y chromium"; \
	fi

test: lint typecheck browser
	$(BIN)/pytest

serve: install
	$(BIN)/veil serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
