"""What `drive check` asks reservations: the open lines that should hold a copy or a waitlist place in inventory,
the reservations stuck in `placed`, and, with `--fix`, the events said again so that inventory catches up."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.relay import Events
from services.reservations import circulation, domain
from services.reservations.models import Line, Reservation

ANNOUNCE = {"reservation_placed": circulation.placement, "reservation_cancelled": circulation.cancellation,
            "reservation_expired": circulation.expiry}


def open_lines(session: Session, now: datetime, stuck_after_seconds: float) -> dict:
    lines, reservations = Line.__table__.c, Reservation.__table__.c
    rows = session.execute(
        select(lines.reservation_id, lines.id.label("line_id"), lines.title_id, lines.status,
               reservations.status.label("reservation_status"), reservations.placed_at)
        .join(Reservation.__table__, reservations.id == lines.reservation_id)
        .where(reservations.status.in_(domain.HOLDING_STATUSES), lines.status.in_(domain.OPEN_LINE_STATUSES))
        .order_by(lines.title_id, lines.reservation_id, lines.id)).mappings().all()
    stuck = session.scalars(select(reservations.id).where(
        reservations.status.in_(domain.ALLOCATABLE),
        reservations.placed_at < now - timedelta(seconds=stuck_after_seconds))
        .order_by(reservations.placed_at)).all()
    return {"lines": [dict(row) for row in rows], "stuck_placed": list(stuck)}


def reannounce(session: Session, events: Events, reservation_ids: Sequence[str], dry_run: bool) -> list[dict]:
    """Each reservation's status and the event said again for it (none for a status an event cannot repair)."""
    found = {r.id: r for r in session.scalars(select(Reservation).where(Reservation.id.in_(set(reservation_ids))))}
    answers = []
    for reservation_id in dict.fromkeys(reservation_ids):
        reservation = found.get(reservation_id)
        event_type = domain.REANNOUNCED.get(reservation.status) if reservation else None
        if event_type and not dry_run:
            events.publish(session, event_type, {**ANNOUNCE[event_type](reservation), "reannounced": True})
        answers.append({"reservation_id": reservation_id, "status": reservation.status if reservation else None,
                        "announced": event_type})
    return answers
