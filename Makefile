# Every target sets itself up: a virtualenv in .venv with the pinned dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/shared/requirements.txt | cksum | cut -d' ' -f1)
export SAM_CLI_TELEMETRY := 0
export PATH := $(CURDIR)/$(BIN):$(PATH)
PYTEST := $(BIN)/python -m pytest
PORT ?= 3000
# The layer package and the handler, importable as Lambda sees them (/opt/python and the task root).
RUN_LOCAL := PYTHONPATH=layers/shared:functions/portal:functions/webhook $(BIN)/python -m

.PHONY: dev test lint types validate build unit property integration layer-check browser-deps browser invoke deploy bench clean

$(STAMP): requirements-dev.txt layers/shared/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

# browser-deps first: a missing browser is reported before minutes of other checks, not after.
test: browser-deps lint types validate unit property integration layer-check browser  ## every check CI runs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

validate: $(STAMP)
	$(BIN)/sam validate --lint

unit: $(STAMP)
	$(PYTEST) tests/unit

property: $(STAMP)  ## Hypothesis: arbitrary API Gateway events, never a 5xx, nothing written when refused
	$(PYTEST) tests/property

integration: $(STAMP)
	$(PYTEST) tests/integration

build: $(STAMP)
	$(BIN)/sam build

layer-check: build
	$(PYTEST) tests/build

browser-deps: $(STAMP)  ## a Chromium or Chrome: CHROMIUM=..., else on PATH, else apt-get installs one
	$(BIN)/python -m tests.chromium --install

browser: browser-deps
	$(PYTEST) tests/e2e

dev: $(STAMP)  ## the whole service on http://127.0.0.1:$(PORT) with embedded stand-ins (ORGANIZATIONS=1: organization mode)
	$(RUN_LOCAL) local.dev_server --port $(PORT) --sam-env-file .aws-sam/dev-env.json $(if $(ORGANIZATIONS),--organizations)

invoke: $(STAMP)  ## one event through the handler, like `sam local invoke -e`, without Docker
	@test -n "$(EVENT)" || { echo "usage: make invoke EVENT=events/portal-post.json"; exit 2; }
	$(RUN_LOCAL) local.invoke $(EVENT)

deploy: build  ## first time `sam deploy --guided` (answers saved in samconfig.toml), then `sam deploy`
	$(BIN)/python -m local.deploy

bench: $(STAMP)  ## init, first response, warm overhead, round trips: this project vs the floor and a naive peer
	$(BIN)/python -m bench

clean:
	rm -rf .aws-sam .bench .mypy_cache .ruff_cache .pytest_cache .hypothesis test-output
