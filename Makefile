# waiverdesk — `make run` to try it, `make test` to check it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
PG_UP = $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 2)" 2>/dev/null

.PHONY: venv run test test-sqlite test-postgres test-sqlite-rest test-sqlite-machine test-postgres-rest test-postgres-machine lint format bench clean chromium screenshots

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

run: venv
	$(BIN)/waiverdesk migrate --verbosity 0
	$(BIN)/waiverdesk demo
	WAIVERDESK_DEVELOPMENT=1 $(BIN)/waiverdesk serve

# The browser tests check every page with axe-core, from the npm registry (package.json).
AXE := node_modules/axe-core/axe.min.js
$(AXE): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

# The browser tests drive Debian's chromium; install it when the machine lacks it.
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The whole suite on SQLite and, when it answers, on PostgreSQL, on both cores: each
# engine's suite in two runs (the state-machine test, the longest, on its own), so that
# a core that finishes early takes the next run (SQLite's rest, the shorter, ends first
# and takes PostgreSQL's state machine, the longer); each report is printed whole when
# its run ends. Slow tests of what does not depend on the
# engine run in the SQLite suite only (testing.once_on_sqlite).
MACHINE := waiverdesk/waivers/tests/test_state_machine.py
test: lint chromium $(AXE)
	WAIVERDESK_DATA_DIR=$$(mktemp -d) DATABASE_URL=sqlite:///:memory: $(BIN)/waiverdesk check --fail-level WARNING
	WAIVERDESK_DATA_DIR=$$(mktemp -d) DATABASE_URL=sqlite:///:memory: $(BIN)/waiverdesk makemigrations --check --dry-run
	@if $(PG_UP); then $(MAKE) --no-print-directory -j2 --output-sync=target \
	  test-postgres-rest test-sqlite-rest test-postgres-machine test-sqlite-machine && \
	echo "engines tested: sqlite postgresql"; else $(MAKE) --no-print-directory test-sqlite && \
	echo "PostgreSQL does not answer at 127.0.0.1:5432: engines tested: sqlite only"; fi

test-sqlite: test-sqlite-rest test-sqlite-machine
test-postgres: test-postgres-rest test-postgres-machine

test-sqlite-rest test-sqlite-machine: venv $(AXE)
	@echo "== tests on SQLite ($(@:test-sqlite-%=%))"
	DATABASE_URL=sqlite:///$$(mktemp -d)/test.sqlite3 $(BIN)/pytest \
	  $(if $(filter %machine,$@),$(MACHINE),--ignore $(MACHINE))

# Each run on its own database (test_test, test_test_machine), so they may overlap.
test-postgres-rest test-postgres-machine: venv $(AXE)
	@echo "== tests on PostgreSQL ($(@:test-postgres-%=%))"
	DATABASE_URL=$(PG_URL)$(if $(filter %machine,$@),_machine) $(BIN)/pytest \
	  $(if $(filter %machine,$@),$(MACHINE),--ignore $(MACHINE))

bench: venv
	$(BIN)/python bench/run.py --engine sqlite
	$(BIN)/python bench/api.py --engine sqlite
	$(BIN)/python bench/worker.py --engine sqlite
	$(BIN)/python bench/usage.py --engine sqlite
	$(BIN)/python bench/governance.py --engine sqlite
	$(BIN)/python bench/insight.py --engine sqlite --waivers 100000
	$(BIN)/python bench/lists.py --engine sqlite
	$(BIN)/python bench/privacy.py --engine sqlite
	@if $(PG_UP); then DATABASE_URL=$(PG_URL) $(BIN)/python bench/run.py --engine postgresql; \
	DATABASE_URL=$(PG_URL) $(BIN)/python bench/api.py --engine postgresql --scaling; \
	DATABASE_URL=$(PG_URL) $(BIN)/python bench/worker.py --engine postgresql; \
	DATABASE_URL=$(PG_URL) $(BIN)/python bench/usage.py --engine postgresql; \
	DATABASE_URL=$(PG_URL) $(BIN)/python bench/governance.py --engine postgresql; \
	DATABASE_URL=$(PG_URL) $(BIN)/python bench/insight.py --engine postgresql; \
	DATABASE_URL=$(PG_URL) $(BIN)/python bench/lists.py --engine postgresql; \
	DATABASE_URL=$(PG_URL) $(BIN)/python bench/privacy.py --engine postgresql; fi

# The README's pictures, taken from the real pages with the demo data.
screenshots: venv chromium $(AXE)
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) var *.egg-info node_modules
