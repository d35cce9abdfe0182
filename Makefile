# streamproof: every target sets itself up, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REPORT_DIR ?= reports
# pytest exits 5 when a selection holds no test: not a failure here.
ALLOW_EMPTY = || [ $$? -eq 5 ]

.PHONY: install conformance test unit lint clean litellm conformance-litellm bench soak fuzz repeat

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

## The chaos soak: 10,000 streams, 100 at a time, through the bundled proxy, each with a fault
## schedule drawn from a seed; per-stream and global checks; reports/soak.json, exit 1 on any
## violation. `SOAK_ARGS='--streams 1000 --seed 7'` for another run, `--replay SEED:INDEX`
## to run one stream's schedule again; at most 300 s of launching (`--max-seconds`).
soak: $(STAMP)
	$(BIN)/python bench/soak.py --out $(REPORT_DIR)/soak.json $(SOAK_ARGS)

## The fuzzers at their full budgets: the SSE decoder on 100,000 byte streams cut anywhere,
## the reference proxy on 10,000 arbitrary requests (never a 5xx, never a hang).
fuzz: $(STAMP)
	STREAMPROOF_FUZZ_SSE=100000 STREAMPROOF_FUZZ_REQUESTS=10000 $(BIN)/python -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

## The default suite 20 times serially and 20 times under -n 2: every case's verdicts must be
## identical (reports/repeat.json). `REPEAT_ARGS='--runs 3 --parallel-runs 3'` for fewer.
repeat: $(STAMP)
	$(BIN)/python bench/repeat_verdicts.py --out $(REPORT_DIR)/repeat.json $(REPEAT_ARGS)

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
