"""What reservations' events change here, inside the caller's transaction: demand signals (a reservation placed
at a stop), and a replica of each stop's reservations (for the manifest and for the rule: a stop with
reservations still to serve stays open)."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from services.bibliobus import domain
from services.bibliobus.control import evaluate_stops
from services.bibliobus.models import DemandSignal, StopReservation
from services.bibliobus.policy import Policy
from services.common.database import insert_new
from services.common.envelope import Event
from services.common.relay import Events


def record_placed(session: Session, outbox: Events, policy: Policy, events: Sequence[Event], now: datetime) -> None:
    """Reservations placed at stops are demand signals, evaluated at once (they may open their stops): a batch
    of them in a few statements, each stop evaluated once for the batch (a switch is caused by the stop's last
    signal of the batch, the one that tipped it)."""
    if not events:
        return
    placed = [event.data for event in events]
    # RETURNING makes SQLAlchemy send the rows as multi-row VALUES, not one round trip each (psycopg2).
    session.execute(insert(DemandSignal).returning(DemandSignal.id), [
        {"stop_id": d["pickup_point"]["id"], "patron": d["patron"], "kind": "reservation",
         "reservation_id": d["reservation_id"], "at": d["placed_at"]} for d in placed])
    # A replica row that exists already came from a later event of the same reservation: it stays.
    session.execute(insert_new(session, StopReservation).returning(StopReservation.reservation_id), [
        {"reservation_id": d["reservation_id"], "stop_id": d["pickup_point"]["id"], "patron": d["patron"],
         "status": "waiting" if d["waiting_for_stop"] else "placed", "placed_at": d["placed_at"], "lines": [],
         "updated_at": now} for d in placed])
    evaluate_stops(session, outbox, policy, now, {d["pickup_point"]["id"] for d in placed},
                   causes={event.data["pickup_point"]["id"]: event for event in events})


def record_ready(session: Session, data: dict, now: datetime) -> None:
    row = _advance(session, data, "ready", now)
    visit = data.get("visit") or {}
    row.visit_arrives_at, row.visit_departs_at = visit.get("arrives_at"), visit.get("departs_at")
    row.lines = [{"title": ln.get("title"), "barcode": ln.get("barcode"), "title_id": ln["title_id"]}
                 for ln in data["lines"]]


def record_closed(session: Session, data: dict, status: str, now: datetime) -> None:
    _advance(session, data, status, now)


def _advance(session: Session, data: dict, status: str, now: datetime,
             placed_at: datetime | None = None) -> StopReservation:
    row = session.get(StopReservation, data["reservation_id"], with_for_update=True)
    if row is None:
        row = StopReservation(reservation_id=data["reservation_id"], stop_id=data["pickup_point"]["id"],
                              patron=data["patron"], status=status, placed_at=placed_at or now, lines=[])
        session.add(row)
    elif domain.moves_forward(row.status, status):
        row.status = status
    row.updated_at = now
    return row
