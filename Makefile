# Naboria: `make run` serves the product on embedded defaults; `make test` runs the suite
# against real services. Both install what they need into .venv on first use.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format typecheck install install-dev browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(RUNTIME_STAMP)

install: $(RUNTIME_STAMP)
install-dev: $(DEV_STAMP)

run: $(RUNTIME_STAMP)
	$(BIN)/python manage.py prepare --demo
	@echo ""
	@echo "Naboria is starting on http://$(HOST):$(PORT)/"
	@echo "  home:    http://$(HOST):$(PORT)/"
	@echo "  admin:   http://$(HOST):$(PORT)/admin/"
	@echo "  health:  http://$(HOST):$(PORT)/health"
	@echo "  metrics: http://$(HOST):$(PORT)/metrics"
	@echo "  API:     http://$(HOST):$(PORT)/api/v1/sites/"
	@echo ""
	$(BIN)/daphne -b $(HOST) -p $(PORT) naboria.asgi:application

browser:
	scripts/install_browser.sh

test: $(DEV_STAMP) browser lint typecheck
	$(BIN)/python scripts/test_services.py $(BIN)/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) var
