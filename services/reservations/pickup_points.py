"""Pickup points as staff set them: their drive hours, slot length and capacity, and closed days (with the lock
that keeps closing a day and setting a deadline apart). The rules are in `opening_days`; this reads and
writes them, inside the caller's transaction."""

import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.auth import Principal
from services.common.database import is_postgres
from services.common.errors import Conflict, Invalid, NotFound
from services.reservations.models import ClosedDay, PickupPoint, PickupSlot
from services.reservations.opening_days import Calendar, check_range, format_week, parse_week
from services.reservations.policy import Policy

EVERY_POINT = "*"


def pickup_point(session: Session, point_id: str, lock: bool = False) -> PickupPoint:
    query = select(PickupPoint).where(PickupPoint.id == point_id, PickupPoint.active)
    point = session.scalars(query.with_for_update() if lock else query).first()
    if point is None:
        raise NotFound(f"no pickup point {point_id}", pickup_point=point_id)
    return point


def during(column: ColumnElement, first: date, last: date, tz: ZoneInfo) -> ColumnElement[bool]:
    """`column` (a moment) falls on one of the local days from `first` to `last`, both included."""
    return and_(column >= datetime.combine(first, time(0), tzinfo=tz),
                column < datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz))


def _closed_days(session: Session, point_ids: tuple[str, ...], policy: Policy, since: date | None) -> dict[date, str]:
    since = since or (datetime.now(policy.tz).date() - timedelta(days=7))
    return dict(session.execute(select(ClosedDay.day, ClosedDay.reason).where(
        ClosedDay.pickup_point_id.in_(point_ids), ClosedDay.day >= since)).all())


def calendar_of(session: Session, point: PickupPoint, policy: Policy, since: date | None = None) -> Calendar:
    """The point's calendar with the days closed from `since` on (default: a week back)."""
    hours = parse_week(point.opening_hours) if point.opening_hours is not None else policy.default_hours
    return Calendar(hours=hours, closed_days=_closed_days(session, (point.id, EVERY_POINT), policy, since),
                    zone=policy.zone, slot_minutes=point.slot_minutes or policy.slot_minutes)


def network_calendar(session: Session, policy: Policy) -> Calendar:
    """The network's opening days: the default hours, and the days closed at every point (`*`)."""
    return Calendar(hours=policy.default_hours, closed_days=_closed_days(session, (EVERY_POINT,), policy, None),
                    zone=policy.zone, slot_minutes=policy.slot_minutes)


def calendar_per_point(session: Session, policy: Policy) -> Callable[[PickupPoint], Calendar]:
    """Each point's calendar, read once per run over many reservations or loans (not once for each)."""
    known: dict[str, Calendar] = {}

    def of(point: PickupPoint) -> Calendar:
        if point.id not in known:
            known[point.id] = calendar_of(session, point, policy)
        return known[point.id]
    return of


def capacity_of(point: PickupPoint, policy: Policy) -> int:
    return point.slot_capacity or policy.slot_capacity


def calendar_view(session: Session, point: PickupPoint, policy: Policy, first: date, last: date) -> dict:
    check_range(first, last)
    calendar = calendar_of(session, point, policy, since=first)
    days = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        reason = calendar.closed_because(day)
        days.append({"day": day, "open": reason is None, "closed_because": reason,
                     "closes_at": None if reason else calendar.closing_time(day)})
    return {"pickup_point": point.id, "opening_hours": format_week(calendar.hours),
            "own_hours": point.opening_hours is not None, "slot_minutes": calendar.slot_minutes,
            "slot_capacity": capacity_of(point, policy), "timezone": calendar.zone, "days": days}


def set_calendar(session: Session, point: PickupPoint, body: dict, now: datetime) -> None:
    """New weekly hours, slot length or capacity. Slots already booked keep their bookings; a lower capacity
    applies to the places not yet taken (a booked slot is never over its capacity because of this)."""
    if body.get("opening_hours") is not None:
        point.opening_hours = format_week(parse_week(body["opening_hours"]))
    if body.get("slot_minutes") is not None:
        point.slot_minutes = body["slot_minutes"]
    if body.get("slot_capacity") is not None:
        point.slot_capacity = body["slot_capacity"]
        slots = PickupSlot.__table__.c
        session.execute(update(PickupSlot.__table__).where(slots.pickup_point_id == point.id, slots.starts_at > now)
                        .values(capacity=body["slot_capacity"]))


def hold_closed_days(session: Session, alone: bool = False) -> None:
    """A day being closed and a deadline being set must not pass each other unseen (each reading the other's
    state from before it): closing a day holds this lock alone, setting a pickup deadline or a due date holds
    it shared, both until commit and before any row lock. So either the deadline is set knowing the closed
    day, or closing the day finds the deadline and moves it. (SQLite serialises writers at BEGIN already.)"""
    if is_postgres(session):
        take = "pg_advisory_xact_lock" if alone else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {take}(hashtext('reservations'), hashtext('closed_days'))"))


def close_day(session: Session, principal: Principal, point_id: str, day: date, reason: str, today: date) -> ClosedDay:
    hold_closed_days(session, alone=True)
    if point_id != EVERY_POINT:
        pickup_point(session, point_id)
    if day < today:
        raise Invalid(f"{day.isoformat()} is in the past", field="day")
    closed = ClosedDay(id=str(uuid.uuid4()), pickup_point_id=point_id, day=day, reason=reason,
                       created_by=principal.subject)
    try:
        with session.begin_nested():
            session.add(closed)
    except IntegrityError:
        raise Conflict(f"{day.isoformat()} is already closed at {point_id}", field="day") from None
    return closed


def reopen_day(session: Session, closed_day_id: str) -> ClosedDay:
    closed = session.get(ClosedDay, closed_day_id)
    if closed is None:
        raise NotFound(f"no closed day {closed_day_id}", closed_day=closed_day_id)
    session.delete(closed)
    return closed


def closed_days(session: Session, first: date, last: date) -> list[ClosedDay]:
    check_range(first, last, max_days=400)
    return list(session.scalars(select(ClosedDay).where(ClosedDay.day >= first, ClosedDay.day <= last)
                                .order_by(ClosedDay.day, ClosedDay.pickup_point_id)))
