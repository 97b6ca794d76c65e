"""Each service's Alembic migrations build exactly the tables its models describe (on PostgreSQL)."""

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine


@pytest.mark.parametrize("service", ["reservations", "inventory", "notifications", "bibliobus"])
def test_migrations_match_the_models(make_database, service):
    models = importlib.import_module(f"services.{service}.models")
    engine = create_engine(make_database(service))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), models.Base.metadata)
    engine.dispose()
    assert differences == []
