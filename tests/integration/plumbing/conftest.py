"""The fixtures of the plumbing contract suites: a database per backend (SQLite, PostgreSQL), its store, the
services' config, and the test event types registered while a test runs."""

import uuid

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL
from tests.integration.plumbing.kit import Base, Store, plumbing_event_types


@pytest.fixture(autouse=True)
def registered_test_events():
    with plumbing_event_types():
        yield


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'plumbing.db'}"
        _create_tables(url)
        yield url
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"drive_plumbing_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    _create_tables(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _create_tables(url: str) -> None:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    yield store
    store.engine.dispose()


@pytest.fixture
def config(rabbit_config, db_url):
    return {"AMQP_URI": rabbit_config["AMQP_URI"], "DB_URL": db_url, "EVENT_MAX_ATTEMPTS": 3,
            "EVENT_RETRY_BASE_SECONDS": 0.01, "OUTBOX_SWEEP_SECONDS": 0.2}
