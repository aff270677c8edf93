# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
MOCK_PORT ?= 9000

.PHONY: install install-dev run test lint lint-imports bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Serves on 127.0.0.1:$(PORT) with the embedded SQLite default, and starts the fake provider
# that config.yaml's `mock` provider points to, so the README tour works offline.
run: install
	@$(BIN)/airuns mock-upstream --port $(MOCK_PORT) & mock=$$!; \
	trap 'kill $$mock 2>/dev/null' EXIT INT TERM; \
	$(BIN)/airuns serve --port $(PORT)

test: install-dev
	$(BIN)/pytest -q

lint: install-dev lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The layers only point down: proxy -> persistence -> pricing (pyproject.toml, import-linter).
lint-imports: install-dev
	$(BIN)/lint-imports

bench: install-dev
	$(BIN)/python bench/overhead.py
