# The project's front door: `make up` runs the whole system on its embedded defaults, `make test` the suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# A shard of the suite per process (eventlet forbids xdist); each test has its own vhost and database.
TEST_ARGS ?=

# The embedded default (dev secret, guest broker, SQLite) is allowed only as DRIVE_ENV=dev: `up`, the tests and the
# benchmarks run on it (services/common/deployment.py refuses it anywhere else).
DEV := DRIVE_ENV=dev

.PHONY: venv constraints up test test-unit lint bench bench-notifications bench-demand bench-appointments bench-board clean

venv: $(VENV)/.installed

# Every package pinned by constraints.txt (the image installs from it too): the same install on every machine.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,charts]'
	touch $@

# After changing a range in pyproject.toml: resolve the ranges afresh in a throwaway venv and pin what it got.
CONSTRAINTS_VENV := build/constraints-venv
constraints:
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) -m venv $(CONSTRAINTS_VENV)
	$(CONSTRAINTS_VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test,charts]'
	{ echo "# Every package of the venv (make venv) and the image, pinned. Regenerate: make constraints"; \
	  $(CONSTRAINTS_VENV)/bin/pip freeze --all --exclude-editable --disable-pip-version-check | grep -v '^pip=='; \
	} > constraints.txt
	rm -rf $(CONSTRAINTS_VENV)

up: venv
	$(DEV) $(BIN)/drive up

test: venv lint
	infra/test-servers.sh
	$(DEV) $(BIN)/nameko test tests -q -p no:timeout $(TEST_ARGS)

test-unit: venv
	$(DEV) $(BIN)/nameko test tests/unit -q -p no:timeout

# mypy reads its files and options from pyproject.toml ([tool.mypy]: services/common).
lint: venv
	$(BIN)/ruff check services tests bench
	$(BIN)/mypy

bench: venv
	infra/test-servers.sh
	$(DEV) $(BIN)/python bench/run_bench.py --json

bench-notifications: venv
	infra/test-servers.sh
	$(DEV) $(BIN)/python bench/notifications.py --json

bench-demand: venv
	infra/test-servers.sh
	$(DEV) $(BIN)/python bench/demand.py --json

bench-appointments: venv
	infra/test-servers.sh
	$(DEV) $(BIN)/python bench/appointments.py --json

# The board in Chromium: patron_arrived → shown, over 100 arrivals (BOARD_SOAK_MINUTES=60: then an hour across a
# restart of the web service and of the bench's own broker node).
BOARD_SOAK_MINUTES ?= 0
bench-board: venv
	infra/test-servers.sh
	$(DEV) $(BIN)/python bench/board.py --soak-minutes $(BOARD_SOAK_MINUTES) --json

clean:
	rm -rf $(VENV) var
