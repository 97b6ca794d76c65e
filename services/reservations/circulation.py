"""Circulation: a reservation's life (placed, prepared, collected, cancelled, expired) and the loans it starts
(due dates, overdue reminders) — what patrons and staff do, and what the timers find due — inside the
caller's transaction. Decisions come from `domain`; every state change writes its event to the outbox with it."""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, literal, null, select, text, union_all, update
from sqlalchemy.orm import Session

from services.common import clock
from services.common.auth import Principal
from services.common.database import is_postgres
from services.common.errors import DriveError, Invalid, NotFound
from services.common.group_commit import Submitted
from services.common.relay import Events
from services.reservations import appointments, claims, domain, stops
from services.reservations.continuity import Suspension
from services.reservations.models import CatalogueTitle, Line, Loan, PickupPoint, Reservation, Selection
from services.reservations.pickup_points import calendar_of, calendar_per_point
from services.reservations.policy import Policy
from services.reservations.refs import line_ref, point_ref


def find(session: Session, reservation_id: str, principal: Principal, lock: bool = False) -> Reservation:
    query = select(Reservation).where(Reservation.id == reservation_id)
    # Lock the reservation's row only: not the pickup point joined to it, which every placement touches.
    reservation = session.scalars(query.with_for_update(of=Reservation) if lock else query).first()
    if reservation is None:
        raise NotFound(f"no reservation {reservation_id}", reservation_id=reservation_id)
    principal.require_reservation(reservation)
    if principal.is_link:
        domain.ensure_link_open(reservation.status, reservation.pickup_deadline, clock.now())
    return reservation


# The placement's statements, built once with bound parameters: building one for each request, and its cache key,
# cost more CPU than PostgreSQL took to run it. Each reads or writes for a whole group of placements at once.
_CARD_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:card))")
# In the array's order (sorted by the caller): two groups that share cards take their locks in the same order.
_CARD_LOCKS = text("SELECT pg_advisory_xact_lock(hashtext(card)) FROM unnest(CAST(:cards AS text[])) AS card")


def _held_statement() -> Any:
    lines, reservations = Line.__table__, Reservation.__table__
    loans, titles, selections = Loan.__table__, CatalogueTitle.__table__, Selection.__table__
    cards, one = bindparam("cards", expanding=True), literal(1)
    reserved = (select(reservations.c.patron, lines.c.material, one)
                .join(reservations, lines.c.reservation_id == reservations.c.id)
                .where(reservations.c.patron.in_(cards), reservations.c.status.in_(domain.OPEN_STATUSES),
                       lines.c.status.in_(domain.OPEN_LINE_STATUSES)))
    on_loan = (select(loans.c.patron, titles.c.material, one).join(loans, loans.c.title_id == titles.c.id)
               .where(loans.c.patron.in_(cards), loans.c.returned_at.is_(None)))
    # A selection asked for and not yet prepared holds its places too (as "selection": no material limit).
    asked = (select(selections.c.patron, literal("selection"), selections.c.documents)
             .where(selections.c.patron.in_(cards), selections.c.status.in_(domain.SELECTION_OPEN)))
    return union_all(reserved, on_loan, asked)


_POINT_COLUMNS = ("id", "name", "kind", "site", "active", "enabled")


def _points_and_titles_statement() -> Any:
    """The pickup points and the titles a group names, in one round trip: `P` rows and `T` rows."""
    points, catalogue = PickupPoint.__table__.c, CatalogueTitle.__table__.c
    named_points = (select(literal("P"), points.id, points.name, points.kind, points.site, points.active,
                           points.enabled, null()).where(points.id.in_(bindparam("point_ids", expanding=True))))
    named_titles = (select(literal("T"), catalogue.id, catalogue.title, null(), null(), null(), null(),
                           catalogue.material).where(catalogue.id.in_(bindparam("title_ids", expanding=True))))
    return union_all(named_points, named_titles)


def _stops_statement() -> Any:
    """The stops' state read again under a share lock (`stops.lock_for_placement`), in id order."""
    points = PickupPoint.__table__
    return (select(*(points.c[name] for name in _POINT_COLUMNS)).where(points.c.id.in_(bindparam(
        "point_ids", expanding=True))).order_by(points.c.id).with_for_update(read=True))


_HELD = _held_statement()
_POINTS_AND_TITLES = _points_and_titles_statement()
_STOPS = _stops_statement()
_INSERT_RESERVATION, _INSERT_LINES = insert(Reservation.__table__), insert(Line.__table__)


def lock_card(session: Session, card: str) -> None:
    """Two reservations of one card placed at once must not both pass the quota (SQLite serialises writers)."""
    if is_postgres(session):
        session.execute(_CARD_LOCK, {"card": card})


def _lock_cards(session: Session, cards: Sequence[str]) -> None:
    if len(cards) == 1:
        lock_card(session, cards[0])
    elif is_postgres(session):
        session.execute(_CARD_LOCKS, {"cards": list(cards)})


def held_materials(session: Session, card: str) -> list[str]:
    """What the card holds, for the quota: one statement, in Core (every placement asks)."""
    return _held_by_card(session, [card])[card]


def _held_by_card(session: Session, cards: Sequence[str]) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {card: [] for card in cards}
    for card, material, count in session.execute(_HELD, {"cards": list(cards)}):
        held[card].extend([material] * count)
    return held


@dataclass(frozen=True)
class PlacementRequest:
    """One placement asked for: who, where, what, on which channel (and the events and policy it goes by)."""

    events: Events
    policy: Policy
    principal: Principal
    card: str
    pickup_point_id: str
    title_ids: Sequence[str]
    channel: str
    selection_id: str | None = None


def place(session: Session, events: Events, policy: Policy, principal: Principal, card: str,
          pickup_point_id: str, title_ids: Sequence[str], channel: str, selection_id: str | None = None) -> Reservation:
    """One placement, in the caller's transaction (a selection prepared); raises its refusal."""
    request = PlacementRequest(events, policy, principal, card, pickup_point_id, title_ids, channel, selection_id)
    (outcome,) = place_all(session, [request])
    if isinstance(outcome, DriveError):
        raise outcome
    return outcome


def place_group(session: Session, group: Sequence[Submitted[PlacementRequest]]) -> list[Reservation | DriveError]:
    """The placements of a group commit (`services.common.group_commit`), each in its worker's context."""
    return place_all(session, [item.value for item in group], [item.within for item in group])


Within = Callable[..., Any]


def place_all(session: Session, requests: Sequence[PlacementRequest],
              within: Sequence[Within] | None = None) -> list[Reservation | DriveError]:
    """Placements in one transaction, in order: each one's reservation, or the refusal it answers. A refusal (an
    unknown point or title, the quota, another's card) comes before its placement writes anything, and the others
    go on. Reads and writes are shared: the points and titles, the cards' locks, what the cards hold, the
    reservations, their lines and their events are one statement each for the whole group, whatever its size. A
    card placed twice in the group: the second placement's quota counts the first's lines."""
    point_ids = sorted({r.pickup_point_id for r in requests})
    named = session.execute(_POINTS_AND_TITLES, {"point_ids": point_ids,
                                                  "title_ids": sorted({t for r in requests for t in r.title_ids})})
    points: dict[str, Any] = {}
    titles: dict[str, Any] = {}
    for row in named:
        if row[0] == "P":
            points[row[1]] = row[1:7]
        else:
            titles[row[1]] = (row[2], row[7])  # title, material
    stops_named = sorted(p for p, columns in points.items() if columns[2] == stops.STOP and columns[4])
    if stops_named:  # their state is read again under the stops' share lock
        points.update({row[0]: tuple(row) for row in session.execute(_STOPS, {"point_ids": stops_named})})
    cards = sorted({r.card for r in requests})
    _lock_cards(session, cards)
    held = _held_by_card(session, cards)
    outcomes: list[Reservation | DriveError] = []
    reservations: list[dict] = []
    lines: list[dict] = []
    for i, request in enumerate(requests):
        run = within[i] if within is not None else _directly
        try:
            reservation, row, its_lines = run(_placed, session, request, points, titles, held[request.card])
        except DriveError as refusal:
            outcomes.append(refusal)
            continue
        outcomes.append(reservation)
        reservations.append(row)
        lines.extend(its_lines)
    if reservations:
        # Written with Core, all in one statement each: the ORM's unit of work cost as much CPU as the statements.
        session.execute(_INSERT_RESERVATION, reservations[0] if len(reservations) == 1 else reservations)
        session.execute(_INSERT_LINES, lines[0] if len(lines) == 1 else lines)
    return outcomes


def _directly(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def _placed(session: Session, request: PlacementRequest, points: dict[str, Any], titles: dict[str, Any],
            held: list[str]) -> tuple[Reservation, dict, list[dict]]:
    """One placement's checks, in order, then its reservation (not written yet) and its event; `held` takes its
    lines, for the next placement of the card in the group."""
    request.principal.require_card(request.card)
    title_ids = request.title_ids
    if len(set(title_ids)) != len(title_ids):
        raise Invalid("a title appears twice in the reservation", field="titles")
    found = points.get(request.pickup_point_id)
    if found is None or not found[4]:
        raise Invalid(f"unknown pickup point {request.pickup_point_id!r}", field="pickup_point")
    unknown = [t for t in title_ids if t not in titles]
    if unknown:
        raise Invalid(f"unknown title(s): {', '.join(unknown)}", field="titles", unknown=unknown)
    wanted = [titles[t][1] for t in title_ids]
    request.policy.quota.check(held, wanted)
    # Only said in the event and the answer: never added to the session.
    point = PickupPoint(**dict(zip(_POINT_COLUMNS, found, strict=True)))
    row = {"id": str(uuid.uuid4()), "patron": request.card, "pickup_point_id": point.id, "channel": request.channel,
           "status": domain.initial_status(point.kind, point.enabled), "placed_at": datetime.now(UTC),
           "selection_id": request.selection_id}
    lines = [{"id": str(uuid.uuid4()), "reservation_id": row["id"], "position": i, "title_id": t,
              "title": titles[t][0], "material": titles[t][1], "status": "pending", "needs_transfer": False}
             for i, t in enumerate(title_ids)]
    # The answer's objects stay out of the session; every value it shows is set (the point too: no lazy load).
    reservation = Reservation(**row, pickup_point=point)
    reservation.lines = [Line(**line) for line in lines]
    request.events.publish(session, "reservation_placed", placement(reservation))
    held.extend(wanted)
    return reservation, row, lines


def placement(reservation: Reservation) -> dict:
    """What `reservation_placed` says of a reservation (also when `drive check --fix` says it again)."""
    return {"reservation_id": reservation.id, "patron": reservation.patron,
            "pickup_point": point_ref(reservation.pickup_point), "channel": reservation.channel,
            "lines": [line_ref(ln) for ln in reservation.lines], "placed_at": reservation.placed_at,
            "waiting_for_stop": reservation.status == "waiting_for_stop"}


def cancellation(reservation: Reservation) -> dict:
    return {"reservation_id": reservation.id, "patron": reservation.patron,
            "cancelled_by": "patron" if reservation.closed_by == "patron" else "staff",
            "pickup_point": point_ref(reservation.pickup_point), "lines": [line_ref(ln) for ln in reservation.lines]}


def expiry(reservation: Reservation) -> dict:
    return {"reservation_id": reservation.id, "patron": reservation.patron,
            "pickup_point": point_ref(reservation.pickup_point), "pickup_deadline": reservation.pickup_deadline,
            "lines": [line_ref(ln) for ln in reservation.lines]}


def make_ready(session: Session, events: Events, policy: Policy, reservation: Reservation, now: datetime,
               principal: Principal, hold_shelf: str | None = None) -> None:
    domain.ensure_ready_to_prepare(reservation.status, [ln.status for ln in reservation.lines
                                                        if ln.status != "cancelled"])
    domain.ensure_free_to_prepare(reservation.claimed_by, principal.subject)
    visit = stops.assign_visit(session, reservation, now)
    reservation.status, reservation.ready_at = "ready", now
    reservation.hold_shelf = hold_shelf or domain.hold_shelf_for(reservation.patron)
    reservation.claimed_by = reservation.claimed_at = None  # prepared: nobody's work any more
    # The deadline falls on an opening day of the point; at a stop, never before the visit ends.
    deadline = calendar_of(session, reservation.pickup_point, policy).after_days(now, policy.pickup_days)
    reservation.pickup_deadline = max(deadline, visit["departs_at"] if visit else now)
    events.publish(session, "reservation_ready", {
        "reservation_id": reservation.id, "patron": reservation.patron,
        "pickup_point": point_ref(reservation.pickup_point), "pickup_deadline": reservation.pickup_deadline,
        "lines": [line_ref(ln) for ln in reservation.lines if ln.status == "allocated"], "visit": visit})


def claim(session: Session, events: Events, reservation_id: str, principal: Principal,
          now: datetime) -> Reservation:
    """Staff take a reservation to prepare (`claims.claim`); the staff apps hear it, unless it was theirs already."""
    reservation = find(session, reservation_id, principal, lock=True)
    held_by = reservation.claimed_by
    claims.claim(session, Reservation, reservation_id, principal, now, domain.TO_PREPARE)
    session.refresh(reservation)
    if held_by != principal.subject:
        events.publish(session, "reservation_claimed", claim_of(reservation, principal.subject))
    return reservation


def release(session: Session, events: Events, reservation_id: str, principal: Principal) -> Reservation:
    """Staff stop preparing it (`claims.release`); the staff apps hear it, if anyone had it."""
    reservation = find(session, reservation_id, principal, lock=True)
    held_by = reservation.claimed_by
    claims.release(session, Reservation, reservation_id, principal)
    session.refresh(reservation)
    if held_by is not None:
        events.publish(session, "reservation_released", claim_of(reservation, held_by))
    return reservation


def claim_of(reservation: Reservation, by: str) -> dict:
    return {"reservation_id": reservation.id, "pickup_point": point_ref(reservation.pickup_point), "claimed_by": by}


def collect(session: Session, events: Events, policy: Policy, reservation: Reservation, now: datetime) -> None:
    domain.ensure_transition(reservation.status, "collected")
    reservation.status, reservation.closed_at, reservation.closed_by = "collected", now, "staff"
    appointments.reservation_closed(session, events, reservation, now)
    due = calendar_of(session, reservation.pickup_point, policy).after_days(now, policy.loan_days)
    loans = []
    for line in reservation.lines:
        if line.status != "allocated":
            continue
        line.status = "collected"
        loan = Loan(id=str(uuid.uuid4()), patron=reservation.patron, reservation_id=reservation.id,
                    line_id=line.id, title_id=line.title_id, title=line.title, barcode=line.barcode,
                    started_at=now, due_at=due)
        session.add(loan)
        loans.append({"loan_id": loan.id, "line_id": line.id, "title_id": line.title_id, "title": line.title,
                      "barcode": line.barcode, "due_at": due})
    events.publish(session, "reservation_collected", {
        "reservation_id": reservation.id, "patron": reservation.patron,
        "pickup_point": point_ref(reservation.pickup_point), "loans": loans})


def cancel(session: Session, events: Events, reservation: Reservation, by: str, now: datetime) -> None:
    domain.ensure_transition(reservation.status, "cancelled")
    _close(reservation, "cancelled", by, now)
    appointments.reservation_closed(session, events, reservation, now)
    events.publish(session, "reservation_cancelled", cancellation(reservation))


def _close(reservation: Reservation, status: str, by: str, now: datetime) -> None:
    reservation.status, reservation.closed_at, reservation.closed_by = status, now, by
    for line in reservation.lines:
        if line.status in domain.OPEN_LINE_STATUSES:
            line.status = status


def expire_due(session: Session, events: Events, policy: Policy, now: datetime, limit: int = 100) -> int:
    """Ready reservations past their deadline. Each is claimed by a conditional update, so two replicas
    running this timer never expire (and announce) the same reservation twice. A deadline on a day the point
    has since closed moves to its next opening day instead."""
    expirable = Reservation.status.in_(domain.EXPIRABLE)
    due = session.execute(select(Reservation.id, Reservation.pickup_deadline, PickupPoint).join(PickupPoint).where(
        expirable, Reservation.pickup_deadline < now).limit(limit)).all()
    calendar = calendar_per_point(session, policy)
    expired = 0
    for reservation_id, deadline, point in due:
        moved = calendar(point).still_due(deadline)
        if moved > now:
            session.execute(update(Reservation).where(Reservation.id == reservation_id, expirable)
                            .values(pickup_deadline=moved).execution_options(synchronize_session=False))
            continue
        claimed = session.execute(update(Reservation).where(Reservation.id == reservation_id, expirable)
            .values(status="expired", closed_at=now, closed_by="timer")
            .execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            continue
        reservation = session.get(Reservation, reservation_id, populate_existing=True)
        _close(reservation, "expired", "timer", now)
        appointments.reservation_closed(session, events, reservation, now)
        events.publish(session, "reservation_expired", expiry(reservation))
        expired += 1
    return expired


def remind_overdue(session: Session, events: Events, policy: Policy, now: datetime,
                   suspensions: Sequence[Suspension] = ()) -> int:
    """One `loan_overdue` per loan per reminder step: the step is claimed by a conditional update. Days of a
    suspension and the grace after it do not count, and at most `reminders_per_run` go out per run, so the
    end of a suspension brings no flood of stale reminders."""
    if any(s.covers(now) for s in suspensions):
        return 0
    loans = session.execute(select(Loan, PickupPoint).join(Reservation, Reservation.id == Loan.reservation_id)
                            .join(PickupPoint).where(Loan.returned_at.is_(None), Loan.due_at < now)
                            .order_by(Loan.due_at)).all()
    calendar = calendar_per_point(session, policy)
    sent = 0
    for loan, point in loans:
        if sent >= policy.reminders_per_run:
            break
        # A due date on a day the point has since closed counts from its next opening day.
        due_at = calendar(point).still_due(loan.due_at)
        overdue = domain.days_overdue(due_at, now, suspensions, policy.grace_days)
        step = domain.reminder_step(overdue, policy.reminder_steps)
        if step <= loan.reminder_step:
            continue
        claimed = session.execute(update(Loan).where(Loan.id == loan.id, Loan.reminder_step < step)
                                  .values(reminder_step=step).execution_options(synchronize_session=False))
        if claimed.rowcount != 1:
            continue
        events.publish(session, "loan_overdue", {
            "loan_id": loan.id, "reservation_id": loan.reservation_id, "patron": loan.patron,
            "barcode": loan.barcode, "title_id": loan.title_id, "title": loan.title, "due_at": loan.due_at,
            "days_overdue": overdue, "reminder_step": step})
        sent += 1
    return sent
