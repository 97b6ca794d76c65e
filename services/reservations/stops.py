"""Bibliobus stops as pickup points, inside the caller's transaction: reservations that wait for their stop to
open, a placement at a stop, and the visit that carries a ready reservation (`services.visits`, the contract).
The stops themselves are kept from bibliobus's events by `from_bibliobus`."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.relay import Events
from services.reservations import domain
from services.reservations.models import PickupPoint, Reservation
from services.reservations.refs import line_ref, point_ref
from services.visits import upcoming_visits

STOP = domain.BIBLIOBUS_STOP


def release_waiting(session: Session, events: Events, point: PickupPoint) -> int:
    """The stop is open: its waiting reservations go on to allocation (inventory takes it from there)."""
    waiting = session.scalars(select(Reservation).where(
        Reservation.pickup_point_id == point.id, Reservation.status.in_(domain.AWAITING_STOP))
        .order_by(Reservation.placed_at).with_for_update(of=Reservation)).all()
    for reservation in waiting:
        domain.ensure_transition(reservation.status, "placed")
        reservation.status = "placed"
        events.publish(session, "reservation_released_to_allocation", {
            "reservation_id": reservation.id, "patron": reservation.patron, "pickup_point": point_ref(point),
            "lines": [line_ref(ln) for ln in reservation.lines]})
    return len(waiting)


def lock_for_placement(session: Session, point: PickupPoint) -> None:
    """A placement reads the stop's state under a share lock: a stop_enabled handled meanwhile waits for it,
    then releases the new reservation too (none is left waiting at an open stop)."""
    if point.kind == STOP:
        session.refresh(point, with_for_update={"read": True})


def assign_visit(session: Session, reservation: Reservation, now: datetime) -> dict | None:
    """The next visit of the stop with room in the vehicle; None away from bibliobus stops. The stop's row
    is locked so that two reservations made ready at once cannot both take a visit's last place."""
    point = reservation.pickup_point
    if point.kind != STOP:
        return None
    session.refresh(point, with_for_update=True)
    taken = dict(session.execute(
        select(Reservation.visit_arrives_at, func.count()).where(
            Reservation.pickup_point_id == point.id, Reservation.status.in_(domain.IN_A_VISIT),
            Reservation.visit_arrives_at > now).group_by(Reservation.visit_arrives_at)).all())
    visit = domain.choose_visit(upcoming_visits(point.visits or [], now, point.timezone), taken,
                                point.capacity_per_visit or 0)
    reservation.visit_arrives_at, reservation.visit_departs_at = visit.arrives_at, visit.departs_at
    return visit.as_ref(point.id)
