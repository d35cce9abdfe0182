# streamproof: every target sets itself up, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REPORT_DIR ?= reports
# pytest exits 5 when a selection holds no test: not a failure here.
ALLOW_EMPTY = || [ $$? -eq 5 ]

.PHONY: install conformance test unit lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The conformance suites against the bundled reference proxy, with an HTML report.
conformance: $(STAMP)
	$(BIN)/python -m pytest suites/ --report-dir=$(REPORT_DIR) --html=$(REPORT_DIR)/conformance.html --self-contained-html $(PYTEST_ARGS) $(ALLOW_EMPTY)

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
	rm -rf $(VENV) $(REPORT_DIR)/*.html $(REPORT_DIR)/*.json .mypy_cache .ruff_cache .hypothesis
