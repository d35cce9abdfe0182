# streamproof: every target sets itself up, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REPORT_DIR ?= reports
# pytest exits 5 when a selection holds no test: not a failure here.
ALLOW_EMPTY = || [ $$? -eq 5 ]

.PHONY: install conformance test unit lint clean litellm conformance-litellm bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The conformance suites against the bundled reference proxy: reports/index.html (the
## matrix of every target run so far), conformance.html (pytest-html) and junit.xml.
conformance: $(STAMP)
	$(BIN)/python -m pytest suites/ --report-dir=$(REPORT_DIR) --html=$(REPORT_DIR)/conformance.html --self-contained-html --junitxml=$(REPORT_DIR)/junit.xml $(PYTEST_ARGS) $(ALLOW_EMPTY)

## LiteLLM's proxy in a virtual environment of its own (never .venv; not part of `make test`).
# 1.103.7: the newest whose requirements the package index here can meet (later ones need
# certifi>=2026.10.19). `LITELLM_VERSION=... make litellm` tries another.
LITELLM_VERSION ?= 1.103.7
LITELLM_VENV    := .litellm
LITELLM_STAMP   := $(LITELLM_VENV)/.installed-$(LITELLM_VERSION)

$(LITELLM_STAMP):
	test -x $(LITELLM_VENV)/bin/python || $(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'litellm[proxy]==$(LITELLM_VERSION)'
	touch $(LITELLM_STAMP)

litellm: $(LITELLM_STAMP)

## The conformance suites against LiteLLM's proxy (the `litellm` profile of targets.toml).
conformance-litellm: $(STAMP) $(LITELLM_STAMP)
	$(BIN)/python -m pytest suites/ --target litellm -n 2 --report-dir $(REPORT_DIR) --junitxml=$(REPORT_DIR)/junit-litellm.xml $(PYTEST_ARGS) $(ALLOW_EMPTY)

## The relay benchmark: the same streams direct from the fake provider and through the bundled
## proxy; reports/bench.json and reports/bench.svg. `BENCH_ARGS=--quick` for a short run,
## `BENCH_ARGS='--target litellm'` to measure LiteLLM's proxy (make litellm) in the same run.
bench: $(STAMP)
	$(BIN)/python bench/relay_bench.py --out $(REPORT_DIR)/bench.json --svg $(REPORT_DIR)/bench.svg $(BENCH_ARGS)

## streamproof's own tests (no proxy needed).
unit: $(STAMP)
	$(BIN)/python -m pytest tests/ -n auto $(PYTEST_ARGS) $(ALLOW_EMPTY)

lint: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy

## Everything CI checks: lint and types, our own tests, then the suites.
test: lint unit conformance

clean:
	rm -rf $(VENV) $(REPORT_DIR)/*.html $(REPORT_DIR)/*.json $(REPORT_DIR)/*.xml $(REPORT_DIR)/targets $(REPORT_DIR)/logs .mypy_cache .ruff_cache .hypothesis
