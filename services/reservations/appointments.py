"""The counter's day: appointment slots and their bookings, the day sheet, and the patron's "I'm here". Inside
the caller's transaction; every change writes its event to the outbox with it."""

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, or_, select, update
from sqlalchemy.orm import Session

from services.common.auth import Principal
from services.common.database import insert_new
from services.common.errors import Conflict, NotFound
from services.common.relay import Events
from services.reservations import domain
from services.reservations.models import Appointment, PickupPoint, PickupSlot, Reservation
from services.reservations.opening_days import check_range
from services.reservations.pickup_points import calendar_of, capacity_of, during
from services.reservations.policy import Policy
from services.reservations.refs import point_ref


def _who(principal: Principal) -> str:
    return "staff" if principal.is_staff else "patron"


def slots(session: Session, point: PickupPoint, policy: Policy, first: date, last: date, now: datetime) -> list[dict]:
    """The coming slots of the point between two days, with the places still free."""
    check_range(first, last)
    domain.ensure_has_slots(point.kind)
    calendar = calendar_of(session, point, policy, since=first)
    known = _slot_rows(session, point, first, last, policy)
    default = capacity_of(point, policy)
    found = []
    for slot in calendar.slots(first, last):
        if slot.starts_at <= now:
            continue
        row = known.get(slot.starts_at)
        cap, booked = (row.capacity, row.booked) if row else (default, 0)
        found.append({"starts_at": slot.starts_at, "ends_at": slot.ends_at, "capacity": cap, "booked": booked,
                      "free": max(cap - booked, 0)})
    return found


def _slot_rows(session: Session, point: PickupPoint, first: date, last: date, policy: Policy) -> dict[datetime, Any]:
    """The point's slots already booked at least once in those days, by start: their capacity and places taken."""
    table = PickupSlot.__table__.c
    return {row.starts_at: row for row in session.execute(select(table.starts_at, table.capacity, table.booked).where(
        table.pickup_point_id == point.id, during(table.starts_at, first, last, policy.tz)))}


def current_appointment(session: Session, reservation_id: str) -> Appointment | None:
    return session.scalars(select(Appointment).where(Appointment.reservation_id == reservation_id,
                                                     Appointment.status == "booked")).first()


def appointment_of(session: Session, reservation: Reservation) -> Appointment:
    appointment = current_appointment(session, reservation.id)
    if appointment is None:
        raise NotFound(f"reservation {reservation.id} has no appointment", reservation_id=reservation.id)
    return appointment


def book(session: Session, events: Events, policy: Policy, principal: Principal, reservation: Reservation,
         starts_at: datetime, now: datetime) -> Appointment:
    """Book (or move to) the slot starting at `starts_at`. The place is taken by one conditional update, so
    concurrent bookings across replicas never take more places than the slot has; a refused one changes
    nothing (the caller's transaction rolls back)."""
    point = reservation.pickup_point
    domain.ensure_bookable(reservation.status, point.kind)
    slot = calendar_of(session, point, policy).slot_at(starts_at)
    domain.ensure_slot_in_time(slot.starts_at, now, reservation.pickup_deadline)
    previous = current_appointment(session, reservation.id)
    if previous is not None and previous.starts_at == slot.starts_at:
        return previous  # the same booking again: nothing to change
    slot_id = _take_place(session, point, policy, slot.starts_at, slot.ends_at)
    if previous is not None:
        _give_back(session, events, previous, "moved", _who(principal), now, status="moved")
    appointment = Appointment(id=str(uuid.uuid4()), reservation_id=reservation.id, slot_id=slot_id,
                              patron=reservation.patron, pickup_point_id=point.id, starts_at=slot.starts_at,
                              ends_at=slot.ends_at, status="booked", booked_by=_who(principal), booked_at=now)
    session.add(appointment)
    events.publish(session, "pickup_slot_booked", {
        "appointment_id": appointment.id, "reservation_id": reservation.id, "patron": reservation.patron,
        "pickup_point": point_ref(point), "starts_at": slot.starts_at, "ends_at": slot.ends_at,
        "booked_by": appointment.booked_by, "moved_from": previous.starts_at if previous else None})
    return appointment


def _take_place(session: Session, point: PickupPoint, policy: Policy, starts_at: datetime, ends_at: datetime) -> str:
    table: Table = PickupSlot.__table__
    session.execute(insert_new(session, table).values(
        id=str(uuid.uuid4()), pickup_point_id=point.id, starts_at=starts_at, ends_at=ends_at,
        capacity=capacity_of(point, policy), booked=0))
    taken = session.execute(update(table).where(
        table.c.pickup_point_id == point.id, table.c.starts_at == starts_at, table.c.booked < table.c.capacity)
        .values(booked=table.c.booked + 1).returning(table.c.id)).scalar()
    if taken is None:
        raise Conflict("this slot is full: choose another one", field="starts_at", starts_at=starts_at.isoformat())
    return taken


def _give_back(session: Session, events: Events, appointment: Appointment, reason: str, by: str, now: datetime,
               status: str = "cancelled") -> None:
    table = PickupSlot.__table__
    session.execute(update(table).where(table.c.id == appointment.slot_id, table.c.booked > 0)
                    .values(booked=table.c.booked - 1))
    appointment.status, appointment.ended_at = status, now
    point = session.get(PickupPoint, appointment.pickup_point_id)
    events.publish(session, "pickup_slot_cancelled", {
        "appointment_id": appointment.id, "reservation_id": appointment.reservation_id,
        "patron": appointment.patron, "pickup_point": point_ref(point), "starts_at": appointment.starts_at,
        "ends_at": appointment.ends_at, "cancelled_by": by, "reason": reason})


def cancel_booking(session: Session, events: Events, principal: Principal, reservation: Reservation,
                   now: datetime) -> Appointment:
    appointment = appointment_of(session, reservation)
    _give_back(session, events, appointment, "cancelled", _who(principal), now)
    return appointment


def reservation_closed(session: Session, events: Events, reservation: Reservation, now: datetime) -> None:
    """Collected: the appointment was kept. Cancelled or expired: its place goes back to the slot."""
    appointment = current_appointment(session, reservation.id)
    if appointment is None:
        return
    if reservation.status == "collected":
        appointment.status, appointment.ended_at = "honoured", now
    else:
        _give_back(session, events, appointment, "reservation_closed", "system", now)


def drive_closed(session: Session, events: Events, point_id: str, day: date, policy: Policy, now: datetime) -> int:
    """Staff closed a day: its appointments are given back (patrons are told by the event) to be booked again."""
    query = select(Appointment).where(Appointment.status == "booked",
                                      during(Appointment.starts_at, day, day, policy.tz))
    if point_id != "*":
        query = query.where(Appointment.pickup_point_id == point_id)
    found = session.scalars(query).all()
    for appointment in found:
        _give_back(session, events, appointment, "drive_closed", "staff", now)
    return len(found)


# --- "I'm here" -------------------------------------------------------------------------------------------

def arrived(session: Session, events: Events, policy: Policy, principal: Principal, reservation: Reservation,
            now: datetime) -> bool:
    """The patron is outside. Said twice the same day, it is one arrival (one event); said before the
    reservation is ready, the day sheet flags it. Returns whether this was news."""
    domain.ensure_can_arrive(reservation.status)
    if not domain.arrival_is_news(reservation.arrived_at, now, policy.tz):
        return False
    reservation.arrived_at = now
    appointment = current_appointment(session, reservation.id)
    events.publish(session, "patron_arrived", {
        "reservation_id": reservation.id, "patron": reservation.patron,
        "pickup_point": point_ref(reservation.pickup_point), "arrived_at": now,
        "ready": reservation.status == "ready", "hold_shelf": reservation.hold_shelf,
        "slot_starts_at": appointment.starts_at if appointment else None, "signalled_by": _who(principal)})
    return True


# --- the day sheet ----------------------------------------------------------------------------------------

def day_sheet(session: Session, point: PickupPoint, policy: Policy, day: date, now: datetime) -> dict:
    """Per slot of the day, the reservations to hand over and where each waits on the hold shelf; then the
    ready ones without an appointment (walk-ins), and the patrons who came before theirs was ready."""
    calendar = calendar_of(session, point, policy, since=day)
    start = datetime.combine(day, time(0), tzinfo=policy.tz)
    booked = session.execute(select(Appointment, Reservation).join(
        Reservation, Reservation.id == Appointment.reservation_id).where(
        Appointment.pickup_point_id == point.id, Appointment.status.in_(domain.KEPT_APPOINTMENTS),
        during(Appointment.starts_at, day, day, policy.tz))).all()
    by_slot: dict[datetime, list[dict]] = {}
    for appointment, reservation in booked:
        by_slot.setdefault(appointment.starts_at, []).append(sheet_entry(reservation))
    known = _slot_rows(session, point, day, day, policy)
    slot_rows = [{"starts_at": slot.starts_at, "ends_at": slot.ends_at,
                  "capacity": known[slot.starts_at].capacity if slot.starts_at in known else capacity_of(point, policy),
                  "reservations": sorted(by_slot.pop(slot.starts_at, []), key=lambda e: e["hold_shelf"] or "")}
                 for slot in calendar.slots(day, day)]
    # Bookings on a slot the hours no longer have (hours changed since) still show, so nobody is forgotten.
    slot_rows += [{"starts_at": s, "ends_at": s + timedelta(minutes=calendar.slot_minutes), "capacity": 0,
                   "reservations": entries} for s, entries in sorted(by_slot.items())]
    with_appointment = {entry["reservation_id"] for row in slot_rows for entry in row["reservations"]}
    open_here = session.scalars(select(Reservation).where(
        Reservation.pickup_point_id == point.id, Reservation.status.in_(domain.OPEN_STATUSES),
        or_(Reservation.status == "ready", Reservation.arrived_at >= start))).all()
    walk_ins = [sheet_entry(r) for r in open_here if r.status == "ready" and r.id not in with_appointment]
    early = [sheet_entry(r) for r in open_here if r.status != "ready" and r.arrived_at and r.arrived_at >= start]
    return {"pickup_point": point_ref(point), "day": day, "open": calendar.is_open(day),
            "closed_because": calendar.closed_because(day), "slots": slot_rows,
            "without_appointment": sorted(walk_ins, key=lambda e: e["hold_shelf"] or ""),
            "arrived_before_ready": early,
            "waiting_outside": [e for row in slot_rows for e in row["reservations"] if e["waiting_outside"]]
            + [e for e in walk_ins if e["waiting_outside"]]}


def sheet_entry(reservation: Reservation) -> dict:
    collected = reservation.status == "collected"
    return {"reservation_id": reservation.id, "patron": reservation.patron, "status": reservation.status,
            "hold_shelf": reservation.hold_shelf, "claimed_by": reservation.claimed_by,
            "arrived_at": reservation.arrived_at, "selection_id": reservation.selection_id,
            "waiting_outside": bool(reservation.arrived_at) and reservation.status in domain.OPEN_STATUSES,
            "arrived_before_ready": bool(reservation.arrived_at) and not collected and reservation.status != "ready",
            "documents": [{"title": ln.title, "barcode": ln.barcode, "shelf_mark": ln.shelf_mark,
                           "status": ln.status} for ln in reservation.lines if ln.status != "cancelled"]}
