"""Fixtures shared by every tier: a fresh PostgreSQL database per test (cloned from a migrated template),
a fresh RabbitMQ vhost per test (nameko's `rabbit_config`), tokens, and a time limit per test."""

import os
import signal
import uuid

# The suite runs on the embedded default (dev secret, guest broker); set before anything reads it, in os.environ so
# that every service a test starts as a subprocess inherits it (services/common/deployment.py).
os.environ.setdefault("DRIVE_ENV", "dev")

import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from services.common.auth import issue_token  # noqa: E402
from services.common.migrate import upgrade  # noqa: E402
from tests.helpers import SmsGateway, smtp_server  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
SERVICES = ("reservations", "inventory", "notifications", "bibliobus")
RUN = uuid.uuid4().hex[:8]


def _admin():
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def outside():
    """What lies outside the system, as real local stand-ins: (the SMTP server's mailbox, its port, the SMS
    gateway)."""
    controller, mailbox, port = smtp_server()
    gateway = SmsGateway()
    yield mailbox, port, gateway
    controller.stop()
    gateway.close()


@pytest.fixture(scope="session")
def pg_templates():
    """One migrated template database per service for this test run (migrations are tested here)."""
    admin = _admin()
    names = {}
    with admin.connect() as conn:
        for service in SERVICES:
            name = f"drive_tpl_{service}_{RUN}"
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            upgrade(service, _pg_url(name))
            names[service] = name
    yield names
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def make_database(pg_templates):
    """`make_database("inventory")` → URL of a fresh database of that service, dropped after the test."""
    admin = _admin()
    created = []

    def make(service: str) -> str:
        name = f"drive_t_{service[:5]}_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_templates[service]}"'))
        created.append(name)
        return _pg_url(name)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def token():
    """`token("staff")` or `token("patron", "C123")` → an Authorization header value."""

    def make(role: str, subject: str = "staff-1") -> dict:
        # A week long: tests that move the clock forward a day or two keep valid tokens.
        return {"Authorization": f"Bearer {issue_token({}, role, subject, hours=24 * 7)}"}

    return make


@pytest.fixture(autouse=True)
def time_limit(request):
    """SIGALRM-based limit (pytest-timeout misbehaves under eventlet)."""
    marker = request.node.get_closest_marker("time_limit")
    seconds = marker.args[0] if marker else int(os.environ.get("TEST_TIME_LIMIT", "120"))

    def expire(signum, frame):
        raise TimeoutError(f"test exceeded {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def pytest_configure(config):
    config.addinivalue_line("markers", "time_limit(seconds): per-test time limit")
