"""Bibliobus stops as pickup points, inside the caller's transaction: the replica kept from bibliobus's
events, reservations that wait for their stop to open, and the visit that carries a ready reservation.

Stop events travel on three queues and may be handled out of order: each carries the stop's revision, and
only a newer one changes the open/closed state (a description is always taken: only stop_registered has one).
"""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.relay import Events
from services.reservations import domain
from services.reservations.models import PickupPoint, Reservation
from services.reservations.refs import line_ref, point_ref
from services.visits import upcoming_visits

STOP = domain.BIBLIOBUS_STOP


class StopNotYetKnown(Exception):
    """stop_enabled overtook the stop's stop_registered: a retry finds it (no PermanentFailure)."""


def record_stop(session: Session, events: Events, data: dict) -> None:
    point = session.get(PickupPoint, data["stop_id"], with_for_update=True)
    if point is None:
        point = PickupPoint(id=data["stop_id"], kind=STOP, active=True, revision=0)
        session.add(point)
    for key in ("name", "site", "district", "visits", "timezone", "capacity_per_visit"):
        setattr(point, key, data[key])
    _apply_state(session, events, point, data["enabled"], data["revision"])


def record_switch(session: Session, events: Events, data: dict, enabled: bool) -> None:
    point = session.get(PickupPoint, data["stop_id"], with_for_update=True)
    if point is None:
        raise StopNotYetKnown(f"stop {data['stop_id']} is not known yet")
    _apply_state(session, events, point, enabled, data["revision"])


def _apply_state(session: Session, events: Events, point: PickupPoint, enabled: bool, revision: int) -> None:
    if revision > (point.revision or 0):
        point.enabled, point.revision = enabled, revision
    session.flush()
    if point.enabled:
        release_waiting(session, events, point)


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
