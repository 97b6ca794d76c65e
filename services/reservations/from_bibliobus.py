"""What bibliobus's events change in reservations, inside the caller's transaction: the replica of its stops
as pickup points, and the reservations a stop that opens releases (`stops.release_waiting`).

Stop events travel on three queues and may be handled out of order: each carries the stop's revision, and
only a newer one changes the open/closed state (a description is always taken: only stop_registered has one).
"""

from sqlalchemy.orm import Session

from services.common.relay import Events
from services.reservations.models import PickupPoint
from services.reservations.stops import STOP, release_waiting


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
