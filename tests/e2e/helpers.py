"""The end-to-end tier's scenario steps, against the services as processes: a catalogue imported, a value read
from a service's database, reservations written straight to it."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, func, insert, select

from services.reservations.models import CatalogueTitle, Line, Reservation
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


def seed_ready(url: str, count: int, point: str, status: str = "ready", patron: str = "R") -> list[str]:
    """Reservations (ready by default) written straight to the database: for tests about what comes after
    allocation (slots, the counter), not about allocation itself."""
    now = datetime.now(UTC)
    rows = [{"id": str(uuid.uuid4()), "patron": f"{patron}{n:04d}", "pickup_point_id": point, "status": status,
             "channel": "web", "placed_at": now, "ready_at": now if status == "ready" else None,
             "pickup_deadline": now + timedelta(days=20) if status == "ready" else None} for n in range(count)]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Reservation), rows)
        conn.execute(insert(Line), [{"id": str(uuid.uuid4()), "reservation_id": r["id"], "position": 0,
                                     "title_id": "t", "title": "Titre", "material": "book", "status": "allocated",
                                     "barcode": f"B-{r['id'][:8]}", "shelf_mark": "RP TIT", "needs_transfer": False}
                                    for r in rows])
    engine.dispose()
    return [r["id"] for r in rows]
