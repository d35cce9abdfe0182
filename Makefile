# streamproof: every target sets itself up, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REPORT_DIR ?= reports
# pytest exits 5 when a selection holds no test: not a failure of `make unit` (PYTEST_ARGS
# may select none of its tests); any other status is the recipe's, as pytest gave it (make
# says "Error 4" for a usage error, then exits 2 itself, as make does for any failure).
ALLOW_EMPTY = || { status=$$?; [ $$status -eq 5 ] || exit $$status; }

.PHONY: install conformance conformance-tls test unit lint clean litellm conformance-litellm nginx portkey bench bench-peers soak soak-distributed fuzz repeat screenshot playground tour lock test-lowest

## `make install` resolves pyproject.toml's ranges afresh (the newest releases they allow);
## `make install LOCKED=1` (or LOCKED=1 with any target) installs requirements.lock instead,
## every package at the version and the hashes written there (docs/development.md). `pip check`
## then fails if the lock no longer meets pyproject.toml (run `make lock`).
ifeq ($(LOCKED),1)
STAMP := $(VENV)/.installed-locked
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)
else
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)
endif

install: $(STAMP)

## uv, pinned, in a virtual environment of its own (.venv-uv): `make lock` and
## `make test-lowest` resolve with it. Nothing else is installed there.
UV_VERSION ?= 0.13.9
UV_VENV    := .venv-uv
UV         := $(UV_VENV)/bin/uv

$(UV):
	test -x $(UV_VENV)/bin/python || $(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

## requirements.lock: every package of `.[dev]`, exact versions with their hashes, for
## Python 3.11 and later on any platform. Run after a change of pyproject.toml's dependencies.
lock: $(UV)
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes --custom-compile-command 'make lock' --quiet -o requirements.lock

## The dependency floors: .venv-lowest holds every direct dependency at the lowest version
## pyproject.toml allows (uv's lowest-direct resolution: what they pull in comes at its newest),
## streamproof built by the lowest setuptools that [build-system] allows. It fails if the
## resolver had to lift a floor (another package needs more: the floor is not a true one),
## then runs the suites and the tests that touch a dependency's API (LOWEST_TESTS; why that
## subset: docs/development.md). It is rebuilt from nothing whenever pyproject.toml changes.
LOWEST_VENV  := .venv-lowest
LOWEST_BIN   := $(LOWEST_VENV)/bin
LOWEST_STAMP := $(LOWEST_VENV)/.installed
# tests/ less the two files that re-run the suites against broken proxies: three quarters of
# its time, through the same code as the suites below (docs/development.md).
LOWEST_TESTS ?= tests/ --ignore=tests/test_broken_proxies.py --ignore=tests/test_outside_proxies.py
LOWEST_REPORT_DIR ?= $(REPORT_DIR)/lowest

define CHECK_FLOORS
import importlib.metadata, sys, tomllib
from packaging.requirements import Requirement
from packaging.version import Version

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
lifted, floors = [], []
for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
    req = Requirement(text)
    floor = min((Version(s.version) for s in req.specifier if s.operator in (">=", "==")), default=None)
    installed = Version(importlib.metadata.version(req.name))
    floors.append(f"{req.name}=={installed}")
    if floor is not None and installed.release[: len(floor.release)] != floor.release:
        lifted.append(f"  {req.name}{req.specifier}: installed {installed}")
if lifted:
    sys.exit("floors lifted by the resolver (raise them in pyproject.toml):\n" + "\n".join(lifted))
print("every direct dependency at its floor:", " ".join(floors))
endef
export CHECK_FLOORS

$(LOWEST_STAMP): pyproject.toml $(UV)
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' > $(LOWEST_VENV)/build-requires.in
	$(UV) pip compile --quiet --resolution lowest --python-version 3.11 $(LOWEST_VENV)/build-requires.in -o $(LOWEST_VENV)/build-floor.txt
	$(UV) pip install --quiet --python $(LOWEST_BIN)/python --resolution lowest-direct --build-constraint $(LOWEST_VENV)/build-floor.txt -e '.[dev]'
	$(LOWEST_BIN)/python -c "$$CHECK_FLOORS"
	touch $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP)
	$(LOWEST_BIN)/python -m pytest $(LOWEST_TESTS) -n 2 -q $(PYTEST_ARGS) $(ALLOW_EMPTY)
	$(LOWEST_BIN)/python -m pytest suites/ -q --report-dir=$(LOWEST_REPORT_DIR) --html=$(LOWEST_REPORT_DIR)/conformance.html --self-contained-html -o render_collapsed=passed,skipped --junitxml=$(LOWEST_REPORT_DIR)/junit.xml $(PYTEST_ARGS)
	$(LOWEST_BIN)/python -m pytest suites/ -n 2 -q --upstream-tls --report-dir=$(LOWEST_REPORT_DIR)/tls $(PYTEST_ARGS)

## The conformance suites against the bundled reference proxy: reports/index.html (the
## matrix of every target run so far), conformance.html (pytest-html) and junit.xml.
conformance: $(STAMP)
	$(BIN)/python -m pytest suites/ --report-dir=$(REPORT_DIR) --html=$(REPORT_DIR)/conformance.html --self-contained-html -o render_collapsed=passed,skipped --junitxml=$(REPORT_DIR)/junit.xml $(PYTEST_ARGS)

## The same over TLS: the fake provider on HTTPS with a CA made for the run (--upstream-tls).
conformance-tls: $(STAMP)
	$(BIN)/python -m pytest suites/ -n 2 --upstream-tls --report-dir=$(REPORT_DIR)/tls --junitxml=$(REPORT_DIR)/junit-tls.xml $(PYTEST_ARGS)

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
	$(BIN)/python -m pytest suites/ --target litellm -n 2 --report-dir $(REPORT_DIR) --junitxml=$(REPORT_DIR)/junit-litellm.xml $(PYTEST_ARGS)

## nginx as a plain reverse proxy (the `nginx` profile of targets.toml), unpacked into .nginx/
## from Debian's packages, never installed system-wide: `apt-get download` and `dpkg -x` need
## no root (only the package lists, from an earlier `apt-get update`). Not part of `make test`.
# On Debian 12 `nginx-light` is a transitional package whose binary is `nginx`'s; on older
# releases it has the binary itself. Its libraries (libc, libcrypt, libpcre2-8, libssl3, zlib)
# are checked with ldd: one that is missing is named, to be installed with apt.
NGINX_DIR   := .nginx
NGINX_STAMP := $(NGINX_DIR)/.installed

$(NGINX_STAMP):
	@command -v apt-get >/dev/null && command -v dpkg >/dev/null || { echo "make nginx: needs Debian's apt-get and dpkg"; exit 1; }
	rm -rf $(NGINX_DIR) && mkdir -p $(NGINX_DIR)/debs
	cd $(NGINX_DIR)/debs && apt-get download nginx-light || { echo "make nginx: apt-get download failed (no package lists? run apt-get update)"; exit 1; }
	dpkg -x $(NGINX_DIR)/debs/nginx-light_*.deb $(NGINX_DIR)
	test -x $(NGINX_DIR)/usr/sbin/nginx || { cd $(NGINX_DIR)/debs && apt-get download nginx && dpkg -x nginx_*.deb ..; }
	@missing="$$(ldd $(NGINX_DIR)/usr/sbin/nginx | grep 'not found')"; test -z "$$missing" || { echo "make nginx: libraries missing for .nginx/usr/sbin/nginx (install them with apt):"; echo "$$missing"; exit 1; }
	$(NGINX_DIR)/usr/sbin/nginx -v
	touch $(NGINX_STAMP)

nginx: $(NGINX_STAMP)

## The Portkey AI gateway (the `portkey` profile of targets.toml) from npm into .portkey/, as
## pinned by targets/portkey/package.json (it says why @hono/node-server is held at 1.13.8).
## Needs node >= 18.18 and npm (Debian: apt-get install nodejs npm). Not part of `make test`.
PORTKEY_DIR   := .portkey
PORTKEY_STAMP := $(PORTKEY_DIR)/.installed

$(PORTKEY_STAMP): targets/portkey/package.json
	@command -v npm >/dev/null || { echo "make portkey: npm is not installed (Debian: apt-get install nodejs npm)"; exit 1; }
	mkdir -p $(PORTKEY_DIR)
	cp targets/portkey/package.json $(PORTKEY_DIR)/package.json
	cd $(PORTKEY_DIR) && npm install --no-audit --no-fund --ignore-scripts --omit=dev
	node -e 'const v = (p) => require("./$(PORTKEY_DIR)/node_modules/" + p + "/package.json").version; console.log("portkey gateway " + v("@portkey-ai/gateway") + ", @hono/node-server " + v("@hono/node-server"))'
	touch $(PORTKEY_STAMP)

portkey: $(PORTKEY_STAMP)

## The relay benchmark: the same streams direct from the fake provider and through the bundled
## proxy; reports/bench.json and reports/bench.svg. `BENCH_ARGS=--quick` for a short run,
## `BENCH_ARGS='--target litellm'` to measure LiteLLM's proxy (make litellm) in the same run.
bench: $(STAMP)
	$(BIN)/python bench/relay_bench.py --out $(REPORT_DIR)/bench.json --svg $(REPORT_DIR)/bench.svg $(BENCH_ARGS)

## The same with the peers, side by side, one session each with the others stopped: nginx,
## Portkey and LiteLLM (`make nginx portkey litellm` first; it names the ones not installed).
## About 6 minutes; `BENCH_ARGS=--quick` for about 2.
bench-peers: $(STAMP)
	@missing=""; \
	test -f $(NGINX_STAMP) || missing="$$missing nginx"; \
	test -f $(PORTKEY_STAMP) || missing="$$missing portkey"; \
	test -f $(LITELLM_STAMP) || missing="$$missing litellm"; \
	test -z "$$missing" || { echo "make bench-peers: not installed:$$missing (run: make$$missing)"; exit 1; }
	$(BIN)/python bench/relay_bench.py --target nginx --target portkey --target litellm --out $(REPORT_DIR)/bench.json --svg $(REPORT_DIR)/bench.svg $(BENCH_ARGS)

## The chaos soak: 10,000 streams, 100 at a time, through the bundled proxy or any target
## (`SOAK_ARGS='--target nginx'`, `--target-cmd ...`), each with a fault schedule drawn from a
## seed; per-stream and global checks, the target's processes watched; reports/soak.json and
## soak.html (soak-<target>.* for another target), exit 1 on any violation.
## `SOAK_ARGS='--streams 1000 --seed 7'` for another run, `--replay SEED:INDEX` to run one
## stream's schedule again; at most 300 s of launching (`--max-seconds`).
soak: $(STAMP)
	$(BIN)/python bench/soak.py --report-dir $(REPORT_DIR) $(SOAK_ARGS)

## The chaos soak's load on Locust in distributed mode: Locust's master in the soak's process
## (beside the fake provider and the proxy, which it judges with), N workers on this machine,
## the same schedules and checks; reports/soak-distributed.json, exit 1 on any violation.
## `SOAK_ARGS='--workers 3 --streams 2000'`; workers on other machines: docs/benchmarks.md.
soak-distributed: $(STAMP)
	$(BIN)/python bench/soak_locust.py --out $(REPORT_DIR)/soak-distributed.json $(SOAK_ARGS)

## The fuzzers at their full budgets: the SSE decoder on 100,000 byte streams cut anywhere,
## the reference proxy on 10,000 arbitrary requests (never a 5xx, never a hang).
fuzz: $(STAMP)
	STREAMPROOF_FUZZ_SSE=100000 STREAMPROOF_FUZZ_REQUESTS=10000 $(BIN)/python -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

## The default suite 20 times serially and 20 times under -n 2: every case's verdicts must be
## identical (reports/repeat.json). `REPEAT_ARGS='--runs 3 --parallel-runs 3'` for fewer.
repeat: $(STAMP)
	$(BIN)/python bench/repeat_verdicts.py --out $(REPORT_DIR)/repeat.json $(REPEAT_ARGS)

## The README's picture of a failing case (docs/img/failing-case.png): the suites against the
## naive pass-through of examples/relay.py in a temporary folder, then headless chromium on the
## page of a case it FAILs. Needs chromium (Debian: apt-get install chromium).
screenshot: $(STAMP)
	$(BIN)/python scripts/screenshots.py $(SCREENSHOT_ARGS)

## What a new user sees, as pictures (reports/tour/): the terminal of the quickstart's run,
## the matrix, a failing case's page, and the playground's dashboard after traffic. Needs
## chromium. Nothing of it is committed.
tour: $(STAMP)
	$(BIN)/python scripts/tour.py --out $(REPORT_DIR)/tour $(TOUR_ARGS)

## The playground, no keys needed: the fake provider on a free port, the reference proxy on it
## (examples/playground.toml) on 127.0.0.1:$(PLAYGROUND_PORT), its dashboard at /, its log in
## logs/proxy.log, and requests to try; Ctrl-C stops both. The scenarios: docs/scenarios.md.
## `make playground PLAYGROUND_PORT=8010` if 8000 is taken (0: a free port).
PLAYGROUND_PORT ?= 8000

playground: $(STAMP)
	PLAYGROUND_KEY=playground-not-a-secret $(BIN)/python examples/playground.py --port $(PLAYGROUND_PORT)

## streamproof's own tests (no proxy needed).
unit: $(STAMP)
	$(BIN)/python -m pytest tests/ -n auto $(PYTEST_ARGS) $(ALLOW_EMPTY)

lint: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy

## Everything CI checks: lint and types, our own tests, then the suites.
test: lint unit conformance conformance-tls

clean:
	rm -rf $(VENV) $(LOWEST_VENV) $(UV_VENV) $(REPORT_DIR)/*.html $(REPORT_DIR)/*.json $(REPORT_DIR)/*.xml $(REPORT_DIR)/targets $(REPORT_DIR)/logs $(LOWEST_REPORT_DIR) .mypy_cache .ruff_cache .hypothesis
