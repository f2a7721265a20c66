# Every target sets itself up: a virtualenv in .venv with the pinned dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# $(call pins,<requirements file>): a checksum of what it installs, so that an edit reinstalls.
pins = $(shell cat $(1) requirements-test.txt layers/shared/requirements.txt | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(call pins,requirements-dev.txt)
# mutmut needs a newer click than aws-sam-cli allows: mutation testing has a virtualenv of its own.
MUTATION_VENV := .venv-mutation
MUTATION_STAMP := $(MUTATION_VENV)/.installed-$(call pins,requirements-mutation.txt)
export SAM_CLI_TELEMETRY := 0
export PATH := $(CURDIR)/$(BIN):$(PATH)
PYTEST := $(BIN)/python -m pytest
PORT ?= 3000
# The layer package and the handler, importable as Lambda sees them (/opt/python and the task root).
RUN_LOCAL := PYTHONPATH=layers/shared:functions/portal:functions/webhook $(BIN)/python -m

.PHONY: dev test lint types validate build unit property integration layer-check browser-deps browser invoke deploy bench mutation clean

# $(call venv,<directory>,<requirements file>): the virtualenv there, with exactly those pins installed.
define venv
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required") if sys.version_info < (3, 11) else None'
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check -r $(2)
	rm -f $(1)/.installed-* && touch $@
endef

$(STAMP): requirements-dev.txt requirements-test.txt layers/shared/requirements.txt
	$(call venv,$(VENV),requirements-dev.txt)

$(MUTATION_STAMP): requirements-mutation.txt requirements-test.txt layers/shared/requirements.txt
	$(call venv,$(MUTATION_VENV),requirements-mutation.txt)

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

mutation: $(MUTATION_STAMP)  ## mutmut over the security core (about 25 min; MODULES="identity http" for some)
	$(MUTATION_VENV)/bin/python -m mutation.run $(MODULES)

deploy: build  ## first time `sam deploy --guided` (answers saved in samconfig.toml), then `sam deploy`
	$(BIN)/python -m local.deploy

bench: $(STAMP)  ## init, first response, warm overhead, round trips: this project vs the floor and a naive peer
	$(BIN)/python -m bench

clean:
	rm -rf .aws-sam .bench .mutation .mypy_cache .ruff_cache .pytest_cache .hypothesis test-output
