"""The end-to-end tier's scenario steps, against the services as processes: a catalogue imported, a value read
from a service's database."""

from sqlalchemy import create_engine, func, select

from services.reservations.models import CatalogueTitle
from tests.helpers import CSV_HEADER, wait_for


def scalar(url: str, query):
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(query).scalar()
    engine.dispose()
    return value


def import_catalogue(system, inventory, rows: str, titles: int) -> None:
    answer = inventory.post("/catalogue/import", data=(CSV_HEADER + rows).encode(),
                            headers={"Content-Type": "text/csv"})
    assert answer.status_code == 201, answer.text
    wait_for(lambda: scalar(system.urls["reservations"], select(func.count()).select_from(CatalogueTitle)) == titles,
             what="titles known to reservations")
