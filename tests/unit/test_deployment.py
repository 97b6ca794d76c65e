"""Safe by default: outside DRIVE_ENV=dev, the dev secret and the default passwords refuse the start."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.deployment import (
    DEV_JWT_SECRET,
    DEV_LINK_SECRET,
    REFUSED_EXIT_CODE,
    refusal,
    service_values,
    unsafe_settings,
)

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "0123456789abcdef0123456789abcdef"
SAFE = {"JWT_SECRET": GOOD_SECRET, "JWT_JWKS_URL": None, "PATRON_LINK_SECRET": "fedcba9876543210fedcba9876543210",
        "AMQP_URI": "pyamqp://drive:s3cret-broker@rabbitmq:5672/",
        "DB_URL": "postgresql+psycopg2://drive:s3cret-db@postgres:5432/reservations"}


def test_real_secret_and_passwords_are_safe():
    assert unsafe_settings(SAFE) == []
    assert refusal(SAFE, "production", "reservations") is None


@pytest.mark.parametrize("change, named", [
    ({"JWT_SECRET": DEV_JWT_SECRET}, "JWT_SECRET is the embedded development secret"),
    ({"JWT_SECRET": ""}, "JWT_SECRET is empty"),
    ({"JWT_SECRET": None}, "JWT_SECRET is empty"),
    ({"JWT_SECRET": "short"}, "JWT_SECRET is shorter than 32"),
    ({"PATRON_LINK_SECRET": DEV_LINK_SECRET}, "PATRON_LINK_SECRET is the embedded development secret"),
    ({"PATRON_LINK_SECRET": ""}, "PATRON_LINK_SECRET is empty"),
    ({"PATRON_LINK_SECRET": "a" * 31}, "PATRON_LINK_SECRET is shorter than 32"),
    ({"AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/"}, "AMQP_URI uses the well-known password 'guest'"),
    ({"AMQP_URI": "pyamqp://drive:drive@rabbitmq:5672/"}, "AMQP_URI uses the well-known password 'drive'"),
    ({"AMQP_URI": "amqp://drive@rabbitmq:5672/"}, "AMQP_URI has no password"),
    ({"DB_URL": "postgresql+psycopg2://drive:drive@postgres/x"}, "DB_URL uses the well-known password 'drive'"),
    ({"DB_URL": "postgresql://postgres@127.0.0.1/x"}, "DB_URL has no password"),
    ({"DB_URL": "sqlite:///var/reservations.db"}, "DB_URL is a SQLite file"),
    ({"INVENTORY_DB_URL": "postgresql://drive:postgres@db/inventory"}, "INVENTORY_DB_URL uses the well-known"),
])
def test_each_unsafe_setting_is_named_with_its_fix(change, named):
    values = {**SAFE, **change}
    problems = unsafe_settings(values)
    assert len(problems) == 1 and problems[0].startswith(named), problems
    assert ": set " in problems[0]  # what, then how to fix it
    line = refusal(values, "production", "reservations")
    assert line is not None and "\n" not in line and named in line
    assert refusal(values, "dev", "reservations") is None  # the embedded default


def test_jwks_makes_the_shared_secret_irrelevant():
    assert unsafe_settings({**SAFE, "JWT_SECRET": DEV_JWT_SECRET, "JWT_JWKS_URL": "https://idp/keys"}) == []


def test_the_link_secret_is_needed_with_jwks_too_and_every_service_checks_it(monkeypatch):
    # The identity provider signs the staff's tokens, never the patron links: their key is Drive's own.
    with_jwks = {**SAFE, "JWT_JWKS_URL": "https://idp/keys", "PATRON_LINK_SECRET": DEV_LINK_SECRET}
    assert [p.split(":")[0] for p in unsafe_settings(with_jwks)] == [
        "PATRON_LINK_SECRET is the embedded development secret"]
    monkeypatch.delenv("PATRON_LINK_SECRET", raising=False)
    assert service_values({})["PATRON_LINK_SECRET"] == DEV_LINK_SECRET  # unset: the default, refused outside dev


def test_a_password_is_read_url_decoded_and_never_echoed():
    assert unsafe_settings({"AMQP_URI": "amqp://drive:gu%65st@h/"})  # "guest", percent-encoded
    line = refusal({**SAFE, "JWT_SECRET": "tiny-but-real"}, None, "inventory")
    assert line is not None and "tiny-but-real" not in line and "DRIVE_ENV=unset" in line


def test_every_problem_is_on_the_one_line():
    everything = {"JWT_SECRET": DEV_JWT_SECRET, "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/",
                  "DB_URL": "sqlite:///var/x.db"}
    line = refusal(everything, "staging", "bibliobus")
    assert line is not None and line.count("; ") == 2 and "\n" not in line
    assert line.startswith("bibliobus refuses to start (DRIVE_ENV=staging, not dev)")


def test_the_suite_runs_as_dev():
    assert os.environ.get("DRIVE_ENV") == "dev"  # tests/conftest.py; subprocesses inherit it


def _without_drive_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DRIVE_ENV" and not k.endswith(("_DB_URL", "JWT_SECRET"))}
    return {**env, "JWT_SECRET": DEV_JWT_SECRET}


@pytest.mark.time_limit(60)
def test_nameko_run_on_the_dev_secret_without_drive_env_exits_at_once_with_one_line():
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "nameko", "run", "--config", "services/inventory/config.yaml",
         "services.inventory.service:InventoryService"],
        cwd=ROOT, env=_without_drive_env(), capture_output=True, text=True, timeout=45)
    output = done.stdout + done.stderr
    assert done.returncode == REFUSED_EXIT_CODE, output
    assert time.monotonic() - started < 30
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "refuses to start" in line]
    assert len(lines) == 1, output
    assert "inventory refuses to start" in lines[0] and "JWT_SECRET is the embedded development secret" in lines[0]


@pytest.mark.time_limit(60)
def test_drive_setup_refuses_the_embedded_default_without_drive_env():
    done = subprocess.run([sys.executable, "-m", "services.cli", "setup"], cwd=ROOT, env=_without_drive_env(),
                          capture_output=True, text=True, timeout=45)
    output = done.stdout + done.stderr
    assert done.returncode == REFUSED_EXIT_CODE, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "refuses to start" in line]
    assert len(lines) == 1 and "drive setup refuses to start" in lines[0], output
    assert "SQLite" in lines[0]
