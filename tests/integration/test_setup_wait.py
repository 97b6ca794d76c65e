"""The Kubernetes initContainer's check: a service's pods wait until `drive setup` migrated its database and
declared the topology (services/common/deployment.py: setup_missing)."""

from sqlalchemy import create_engine, text

from services.cli import service_classes
from services.common.deployment import setup_missing
from services.common.messaging import declare_topology


def test_setup_missing_names_the_queues_then_nothing_once_the_topology_is_declared(make_database, rabbit_config):
    url = make_database("inventory")  # migrated (a clone of the migrated template)
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    missing = setup_missing("inventory", url, config)
    assert len(missing) == 1 and missing[0].startswith("queue evt-") and "not declared" in missing[0]
    declare_topology(service_classes(), config)
    assert setup_missing("inventory", url, config) == []


def test_setup_missing_names_an_unmigrated_database(make_database, rabbit_config):
    url = make_database("bibliobus")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    engine.dispose()
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    declare_topology(service_classes(), config)
    missing = setup_missing("bibliobus", url, config)
    assert missing == [missing[0]] and "the bibliobus database is at no revision" in missing[0]


def test_the_web_service_has_no_database_and_waits_for_the_topology_alone(rabbit_config):
    config = {"AMQP_URI": rabbit_config["AMQP_URI"]}
    missing = setup_missing("web", "", config)
    assert missing and all(m.startswith("queue evt-") for m in missing)  # the other services' queues, no database
    declare_topology(service_classes(), config)
    assert setup_missing("web", "", config) == []
