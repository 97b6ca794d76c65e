"""The integration tier's scenario steps, over HTTP and AMQP against the services in this process: a title
catalogued, a reservation made ready, a bibliobus stop added, an event published as its service would."""

import pytest
from kombu import Connection, Exchange, Producer
from nameko.testing.utils import find_free_port
from sqlalchemy import create_engine, func, select

from services.common.envelope import REGISTRY, Event
from services.common.migrate import upgrade
from services.reservations.models import CatalogueTitle
from tests.helpers import stop_body, wait_for

RULE = {"STOP_ENABLE_THRESHOLD": 3, "STOP_DISABLE_THRESHOLD": 1, "STOP_CONSECUTIVE_EVALUATIONS": 2}


def service_config(rabbit_config: dict, db_url: str, **extra) -> dict:
    return {"AMQP_URI": rabbit_config["AMQP_URI"], "DB_URL": db_url,
            "WEB_SERVER_ADDRESS": f"127.0.0.1:{find_free_port()}", "OUTBOX_SWEEP_SECONDS": 0.5,
            "EVENT_MAX_ATTEMPTS": 3, "EVENT_RETRY_BASE_SECONDS": 0.05, "EXPIRY_CHECK_SECONDS": 3600,
            "OVERDUE_CHECK_SECONDS": 3600, "QUARANTINE_CHECK_SECONDS": 3600, **extra}


def catalogue(drive, title: str, copies: list[tuple[str, str, str]], material: str = "book") -> str:
    """Add a title and its copies over HTTP; wait until reservations' replica of the catalogue has it."""
    created = drive.inventory.post("/titles", json={"title": title, "author": "Karin Holm", "material": material})
    assert created.status_code == 201, created.text
    title_id = created.json()["id"]
    for barcode, site, shelf in copies:
        added = drive.inventory.post(f"/titles/{title_id}/copies",
                                     json={"barcode": barcode, "site": site, "shelf_mark": shelf})
        assert added.status_code == 201, added.text
    engine = create_engine(drive.urls["reservations"])
    with engine.connect() as conn:
        wait_for(lambda: conn.execute(select(CatalogueTitle.id).where(CatalogueTitle.id == title_id)).first()
                 or conn.rollback(), what="the title in reservations' catalogue")
    engine.dispose()
    return title_id


def ready_reservation(drive, card: str, title_id: str, point: str = "central-adult", headers=None) -> str:
    placed = drive.reservations.post("/reservations", headers=headers,
                                     json={"patron": card, "pickup_point": point, "titles": [title_id]})
    assert placed.status_code == 201, placed.text
    rid = placed.json()["id"]
    wait_for(lambda: drive.reservations.get(f"/reservations/{rid}").json()["status"] == "allocated")
    ready = drive.reservations.post(f"/reservations/{rid}/ready", json={"hold_shelf": f"H-{card}"})
    assert ready.status_code == 200, ready.text
    return rid


def add_stop(drive, stop_id: str, capacity: int = 10) -> dict:
    """Add a stop, and wait until reservations offers it as a pickup point."""
    created = drive.bibliobus.post("/stops", json=stop_body(stop_id, capacity))
    assert created.status_code == 201, created.text
    wait_for(lambda: any(p["id"] == stop_id for p in drive.reservations.get("/pickup-points").json()),
             what="the stop among reservations' pickup points")
    return created.json()


def bus_rows(drive, model, *where) -> int:
    """Rows of a bibliobus table (the database of `drive_factory(bibliobus_extra=…)`)."""
    engine = create_engine(drive.urls["bibliobus"])
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(model).where(*where)).scalar()
    engine.dispose()
    return n


def publish(amqp_uri: str, source: str, type_: str, data: dict, event: Event | None = None) -> Event:
    """Publish an event as its service would (the same envelope); give `event` to deliver one again."""
    event = event or REGISTRY.build(source, type_, data)
    with Connection(amqp_uri) as conn:
        Producer(conn.default_channel).publish(
            event.to_message(), exchange=Exchange(f"{source}.events", type="topic", durable=True),
            routing_key=type_, serializer="json")
    return event


# A module that imports this fixture runs each of its tests on both databases (it overrides tests/conftest.py's).
@pytest.fixture(params=["postgresql", "sqlite"], name="make_database")
def on_both_databases(request, make_database, tmp_path):
    """Each test here on PostgreSQL (the shared fixture's fresh databases) and on the embedded SQLite files."""
    if request.param == "postgresql":
        return make_database

    def make(service: str) -> str:
        url = f"sqlite:///{tmp_path / f'{service}.db'}"
        upgrade(service, url)
        return url
    return make
