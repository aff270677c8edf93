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

# Serves on 127.0.0.1:$(PORT) with the embedded SQLite default, and starts the fake provider on
# $(MOCK_PORT), pointing config.yaml's `mock` provider at it (AIRUNS_PROVIDERS_MOCK_BASE_URL), so
# the README tour works offline on any ports. Both ports are checked before anything starts:
# one line (make's `$(error)`), and no mock left running, when either cannot be used.
run: install
	$(if $(RUN_PORTS_PROBLEM),$(error $(RUN_PORTS_PROBLEM)))
	@$(BIN)/airuns mock-upstream --port $(MOCK_PORT) & mock=$$!; \
	trap 'kill $$mock 2>/dev/null' EXIT INT TERM; \
	AIRUNS_PROVIDERS_MOCK_BASE_URL=http://127.0.0.1:$(MOCK_PORT)/v1 \
	$(BIN)/airuns serve --port $(PORT)

# Prints why PORT or MOCK_PORT cannot be listened on (nothing when both can). Bound as the
# servers bind (SO_REUSEADDR), so a port left in TIME_WAIT is not taken for a busy one.
define CHECK_PORTS
import socket, sys
def refuse(message):
    print(f"make run: {message}")
    sys.exit()
ports = dict(zip(("PORT", "MOCK_PORT"), sys.argv[1:]))
for name, value in ports.items():
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        refuse(f"{name}={value} is not a port (1-65535)")
if ports["PORT"] == ports["MOCK_PORT"]:
    refuse("PORT and MOCK_PORT must differ")
for name, value in ports.items():
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", int(value)))
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            refuse(f"{name}={value} cannot be used ({reason}); pick another port")
endef
RUN_PORTS_PROBLEM = $(shell $(BIN)/python -c '$(CHECK_PORTS)' $(call quote,$(PORT)) $(call quote,$(MOCK_PORT)))
# $(1) as one single-quoted shell word, whatever it holds (a `'` in PORT cannot end the quote).
quote = '$(subst ','\'',$(1))'

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
