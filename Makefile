# The verbs of Gatehouse. `make demo` runs the product, `make test` proves it; both start from nothing.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# Reinstall whenever the declared or pinned dependencies change.
INSTALLED := $(VENV)/.installed

# Embedded defaults for the demo (SQLite, in-process everything, eager Celery, loopback mock upstream).
DEMO_ENV := DEBUG=true GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS=true

.PHONY: help install demo test lint fmt typecheck bench clean

help: ## List the verbs
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	@$(PYTHON) -c "import sys; sys.exit(sys.version_info[:2] != (3, 11))" || { echo "Gatehouse needs Python 3.11 (found: $(PYTHON)); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): $(PY) pyproject.toml requirements/constraints.txt
	$(PY) -m pip install --quiet --constraint requirements/constraints.txt --editable ".[dev]"
	@touch $@

install: $(INSTALLED) ## Create .venv and install Gatehouse with its dev tools

demo: $(INSTALLED) ## Run the demo on embedded defaults: http://127.0.0.1:8000 (Ctrl-C stops it)
	$(DEMO_ENV) $(PY) manage.py demo

test: $(INSTALLED) ## Run the whole test suite (uses DATABASE_URL / REDIS_URL when set)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED) ## ruff check + format check, and no missing migrations
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=true $(PY) manage.py makemigrations --check --dry-run

fmt: $(INSTALLED) ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(INSTALLED) ## mypy with the Django and DRF plugins
	DEBUG=true $(VENV)/bin/mypy .

bench: $(INSTALLED) ## Gateway vs nginx vs LiteLLM proxy (needs wrk, nginx-light) → bench/results/
	$(DEMO_ENV) $(PY) scripts/bench.py $(BENCH_ARGS)

clean: ## Remove the virtualenv and local state (var/)
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
