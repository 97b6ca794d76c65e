"""Due-date shifts, in the caller's transaction: due dates and pickup deadlines moved off a closure (as in
lockdown) or off a day staff have just closed — previewed, applied, undone — with one event per patron."""

import uuid
from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import null, select, update
from sqlalchemy.orm import Session

from services.common.auth import Principal
from services.common.errors import Conflict, NotFound
from services.common.relay import Events
from services.reservations import domain
from services.reservations.continuity import DueItem, shift_due_dates
from services.reservations.models import DueDateShift, Loan, PickupPoint, Reservation, ShiftedItem
from services.reservations.opening_days import deadlines_on
from services.reservations.pickup_points import EVERY_POINT, calendar_per_point, network_calendar
from services.reservations.policy import Policy


def _due_items(session: Session) -> tuple[list[DueItem], dict[str, Loan], dict[str, Reservation]]:
    lent = session.execute(select(Loan, Reservation.pickup_point_id).join(
        Reservation, Reservation.id == Loan.reservation_id).where(Loan.returned_at.is_(None))).all()
    loans = {ln.id: ln for ln, _ in lent}
    ready = {r.id: r for r in session.scalars(select(Reservation).where(Reservation.status.in_(domain.EXPIRABLE)))}
    items = [DueItem(f"loan:{ln.id}", ln.patron, ln.due_at, point) for ln, point in lent]
    items += [DueItem(f"reservation:{k}", r.patron, r.pickup_deadline, r.pickup_point_id) for k, r in ready.items()]
    return items, loans, ready


def preview(session: Session, closed_from: datetime, closed_until: datetime, rule: str, policy: Policy,
            fixed: date | None, spread_days: int) -> list[dict]:
    """What a shift would change: the dates due inside the closure, onto the opening days of each point."""
    items, loans, ready = _due_items(session)
    per_point = calendar_per_point(session, policy)
    moved = shift_due_dates(items, closed_from, closed_until, rule, network_calendar(session, policy), fixed,
                            spread_days, lambda point_id: per_point(session.get(PickupPoint, point_id)))
    changes = []
    for key, new in sorted(moved.items(), key=lambda kv: (kv[1], kv[0])):
        kind, _, item_id = key.partition(":")
        record = loans[item_id] if kind == "loan" else ready[item_id]
        old = record.due_at if kind == "loan" else record.pickup_deadline
        changes.append({"kind": kind, "id": item_id, "patron": record.patron, "previous": old, "new": new,
                        "title": getattr(record, "title", None)})
    return changes


def apply_shift(session: Session, events: Events, principal: Principal, changes: list[dict], params: dict,
                now: datetime) -> DueDateShift:
    for change in changes:
        _set(session, change["kind"], change["id"], change["new"])
    return _record(session, events, principal, changes, params, now)


def _record(session: Session, events: Events, principal: Principal, changes: list[dict], params: dict,
            now: datetime) -> DueDateShift:
    """The shift as made (so that it can be undone), and one event per patron."""
    shift = DueDateShift(id=str(uuid.uuid4()), created_by=principal.subject, created_at=now, **params)
    session.add(shift)
    for change in changes:
        session.add(ShiftedItem(shift_id=shift.id, kind=change["kind"], item_id=change["id"],
                                patron=change["patron"], previous=change["previous"], new=change["new"]))
    _tell_patrons(session, events, shift.id, changes, undone=False)
    return shift


def move_off_closed_day(session: Session, events: Events, principal: Principal, point_id: str, day: date,
                        policy: Policy, now: datetime) -> dict:
    """Staff have just closed `day` at a point (or `*`, everywhere): the pickup deadlines and due dates that end
    on it move at once where the point's calendar, with the closure, puts them (`Calendar.still_due`): one
    shift, undoable like any other, and one event per patron. Closing days take turns (`hold_closed_days`), and each
    date moves by a conditional update on the value read, in id order: two closings of that day on two
    replicas (the point's and the network's) move it once, and a timer or a shift that moved it meanwhile
    keeps its move."""
    after, until = deadlines_on(day, policy.tz)
    ready = (select(Reservation.id, Reservation.patron, Reservation.pickup_deadline, null(), PickupPoint)
             .join(PickupPoint).where(Reservation.status.in_(domain.EXPIRABLE), Reservation.pickup_deadline > after,
                                      Reservation.pickup_deadline <= until).order_by(Reservation.id))
    lent = (select(Loan.id, Loan.patron, Loan.due_at, Loan.title, PickupPoint)
            .join(Reservation, Reservation.id == Loan.reservation_id).join(PickupPoint)
            .where(Loan.returned_at.is_(None), Loan.due_at > after, Loan.due_at <= until).order_by(Loan.id))
    if point_id != EVERY_POINT:
        ready, lent = ready.where(PickupPoint.id == point_id), lent.where(PickupPoint.id == point_id)
    calendar = calendar_per_point(session, policy)
    changes = []
    for kind, query in (("reservation", ready), ("loan", lent)):
        for item_id, patron, previous, title, point in session.execute(query).all():
            new = calendar(point).still_due(previous)
            if new != previous and _move(session, kind, item_id, previous, new):
                changes.append({"kind": kind, "id": item_id, "patron": patron, "previous": previous, "new": new,
                                "title": title})
    if not changes:
        return {"due_date_shift": None, "dates_moved": 0}
    shift = _record(session, events, principal, changes, {"closed_from": after, "closed_until": until,
                                                          "rule": "closure", "fixed_date": None,
                                                          "opening_days": None}, now)
    return {"due_date_shift": shift.id, "dates_moved": len(changes)}


def _move(session: Session, kind: str, item_id: str, previous: datetime, new: datetime) -> bool:
    """Move the date if it still is `previous` (and the loan open, the reservation ready)."""
    if kind == "loan":
        query = update(Loan).where(Loan.id == item_id, Loan.returned_at.is_(None), Loan.due_at == previous)
        query = query.values(due_at=new)
    else:
        query = update(Reservation).where(Reservation.id == item_id, Reservation.status.in_(domain.EXPIRABLE),
                                          Reservation.pickup_deadline == previous).values(pickup_deadline=new)
    return session.execute(query.execution_options(synchronize_session=False)).rowcount == 1


def undo_shift(session: Session, events: Events, shift_id: str, now: datetime) -> list[dict]:
    shift = session.get(DueDateShift, shift_id, with_for_update=True)
    if shift is None:
        raise NotFound(f"no due-date shift {shift_id}")
    if shift.undone_at is not None:
        raise Conflict("this shift was already undone")
    items = session.scalars(select(ShiftedItem).where(ShiftedItem.shift_id == shift_id)).all()
    changes = []
    for item in items:  # only what still carries the shifted date: a later change by staff stands
        if _get(session, item.kind, item.item_id) == item.new:
            _set(session, item.kind, item.item_id, item.previous)
            changes.append({"kind": item.kind, "id": item.item_id, "patron": item.patron, "previous": item.new,
                            "new": item.previous, "title": _title(session, item.kind, item.item_id)})
    shift.undone_at = now
    _tell_patrons(session, events, shift.id, changes, undone=True)
    return changes


def _get(session: Session, kind: str, item_id: str) -> datetime | None:
    if kind == "loan":
        loan = session.get(Loan, item_id)
        return loan.due_at if loan and loan.returned_at is None else None
    reservation = session.get(Reservation, item_id)
    return reservation.pickup_deadline if reservation and reservation.status in domain.EXPIRABLE else None


def _set(session: Session, kind: str, item_id: str, when: datetime) -> None:
    if kind == "loan":
        session.get(Loan, item_id).due_at = when
    else:
        session.get(Reservation, item_id).pickup_deadline = when


def _title(session: Session, kind: str, item_id: str) -> str | None:
    return session.get(Loan, item_id).title if kind == "loan" else None


def _tell_patrons(session: Session, events: Events, shift_id: str, changes: list[dict], undone: bool) -> None:
    """One event per patron, not per document: one message each."""
    by_patron: dict[str, list[dict]] = defaultdict(list)
    for change in changes:
        by_patron[change["patron"]].append(change)
    for patron, mine in sorted(by_patron.items()):
        events.publish(session, "due_dates_shifted", {
            "shift_id": shift_id, "patron": patron, "undone": undone,
            "loans": [{"loan_id": c["id"], "title": c["title"], "previous_due_at": c["previous"], "due_at": c["new"]}
                      for c in mine if c["kind"] == "loan"],
            "reservations": [{"reservation_id": c["id"], "previous_pickup_deadline": c["previous"],
                              "pickup_deadline": c["new"]} for c in mine if c["kind"] == "reservation"]})
