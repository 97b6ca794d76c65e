"""The tour: stops, their schedule and capacity, inside the caller's transaction. Every change is announced
with `stop_registered` (what reservations needs to offer the stop as a pickup point)."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.bibliobus.models import Stop
from services.bibliobus.policy import Policy
from services.common.errors import Conflict, Invalid, NotFound
from services.common.relay import Events
from services.visits import slot_problems

DESCRIPTION = ("name", "district", "latitude", "longitude", "capacity_per_visit", "visits")


def find(session: Session, stop_id: str, lock: bool = False) -> Stop:
    """`lock`: lock the row, then read it as it is once locked (never a copy this session loaded before)."""
    query = select(Stop).where(Stop.id == stop_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    stop = session.scalars(query).first()
    if stop is None:
        raise NotFound(f"no bibliobus stop {stop_id!r}", stop=stop_id)
    return stop


def _check_visits(visits: list[dict]) -> None:
    problems = slot_problems(visits)
    if problems:
        raise Invalid("; ".join(problems), field="visits")


def add_stop(session: Session, outbox: Events, policy: Policy, body: dict, now: datetime) -> Stop:
    _check_visits(body["visits"])
    if session.get(Stop, body["id"]) is not None:
        raise Conflict(f"stop {body['id']!r} exists already: PUT /stops/{body['id']} changes it", stop=body["id"])
    stop = Stop(id=body["id"], enabled=False, mode="auto", rounds_below=0, revision=1, demand=0, updated_at=now,
                **{k: body[k] for k in DESCRIPTION})
    session.add(stop)
    session.flush()
    announce(session, outbox, policy, stop)
    return stop


def change_stop(session: Session, outbox: Events, policy: Policy, stop_id: str, body: dict, now: datetime) -> Stop:
    _check_visits(body["visits"])
    stop = find(session, stop_id, lock=True)
    for key in DESCRIPTION:
        setattr(stop, key, body[key])
    stop.revision += 1
    stop.updated_at = now
    announce(session, outbox, policy, stop)
    return stop


def announce(session: Session, outbox: Events, policy: Policy, stop: Stop) -> None:
    outbox.publish(session, "stop_registered", {
        "stop_id": stop.id, "name": stop.name, "district": stop.district, "latitude": stop.latitude,
        "longitude": stop.longitude, "site": policy.site, "timezone": policy.timezone, "visits": stop.visits,
        "capacity_per_visit": stop.capacity_per_visit, "enabled": stop.enabled, "revision": stop.revision})
