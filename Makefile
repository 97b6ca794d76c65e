# The project's front door: `make up` runs the whole system on its embedded defaults, `make test` the suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# A shard of the suite per process (eventlet forbids xdist); each test has its own vhost and database.
TEST_ARGS ?=

.PHONY: venv up test test-unit lint bench bench-notifications bench-demand bench-appointments clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,charts]'
	touch $@

up: venv
	$(BIN)/drive up

test: venv lint
	infra/test-servers.sh
	$(BIN)/nameko test tests -q -p no:timeout $(TEST_ARGS)

test-unit: venv
	$(BIN)/nameko test tests/unit -q -p no:timeout

# mypy reads its files and options from pyproject.toml ([tool.mypy]: services/common).
lint: venv
	$(BIN)/ruff check services tests bench
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/run_bench.py --json

bench-notifications: venv
	$(BIN)/python bench/notifications.py --json

bench-demand: venv
	$(BIN)/python bench/demand.py --json

bench-appointments: venv
	$(BIN)/python bench/appointments.py --json

clean:
	rm -rf $(VENV) var
