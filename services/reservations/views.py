"""What staff and patrons read back: reservations, the preparation list, loans, the account."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.auth import Principal
from services.common.errors import NotFound
from services.reservations import domain, suspensions
from services.reservations.circulation import point_ref
from services.reservations.continuity import Suspension
from services.reservations.models import Line, Loan, PickupPoint, Reservation
from services.reservations.policy import Policy


def reservation_view(reservation: Reservation) -> dict:
    return {
        "id": reservation.id, "patron": reservation.patron, "status": reservation.status,
        "channel": reservation.channel, "pickup_point": point_ref(reservation.pickup_point),
        "placed_at": reservation.placed_at, "ready_at": reservation.ready_at,
        "pickup_deadline": reservation.pickup_deadline, "closed_at": reservation.closed_at,
        "closed_by": reservation.closed_by,
        "visit": {"arrives_at": reservation.visit_arrives_at, "departs_at": reservation.visit_departs_at}
        if reservation.visit_arrives_at else None,
        "hold_shelf": reservation.hold_shelf, "claimed_by": reservation.claimed_by,
        "arrived_at": reservation.arrived_at, "selection_id": reservation.selection_id,
        "handed_over_after_seconds": int((reservation.closed_at - reservation.arrived_at).total_seconds())
        if reservation.status == "collected" and reservation.arrived_at and reservation.closed_at else None,
        "appointment": reservation.appointment,
        "lines": [{"id": ln.id, "title_id": ln.title_id, "title": ln.title, "material": ln.material,
                   "status": ln.status, "barcode": ln.barcode, "site": ln.site, "shelf_mark": ln.shelf_mark,
                   "needs_transfer": ln.needs_transfer, "waitlist_position": ln.waitlist_position}
                  for ln in reservation.lines],
    }


# What a patron link does not show: the card (the link may be forwarded, an SMS read over a shoulder), and the
# member of staff preparing it. The rest is what the ready message said, and the reservation's state.
HIDDEN_FROM_LINKS = ("patron", "claimed_by")


def reservation_view_for(principal: Principal, reservation: Reservation) -> dict:
    view = reservation_view(reservation)
    if principal.is_link:
        for key in HIDDEN_FROM_LINKS:
            del view[key]
    return view


def patron_reservations(session: Session, card: str) -> list[dict]:
    found = session.scalars(select(Reservation).where(Reservation.patron == card)
                            .order_by(Reservation.placed_at.desc())).all()
    return [reservation_view(r) for r in found]


def preparation_list(session: Session, point_id: str) -> dict:
    """Every allocated line of the point's reservations still to prepare, in the order of a walk."""
    point = session.get(PickupPoint, point_id)
    if point is None:
        raise NotFound(f"unknown pickup point {point_id}", pickup_point=point_id)
    rows = session.execute(select(Line, Reservation).join(Reservation).where(
        Reservation.pickup_point_id == point_id, Reservation.status.in_(domain.TO_PREPARE),
        Line.status == "allocated")).all()
    items = [{"reservation_id": r.id, "line_id": ln.id, "patron": r.patron, "title_id": ln.title_id,
              "title": ln.title, "barcode": ln.barcode, "site": ln.site, "shelf_mark": ln.shelf_mark,
              "needs_transfer": ln.needs_transfer, "claimed_by": r.claimed_by,
              "reservation_complete": r.status == "allocated"
              and not domain.lines_waiting(x.status for x in r.lines)}
             for ln, r in rows]
    items.sort(key=lambda item: domain.walk_order(item, point.site))
    return {"pickup_point": point_ref(point), "items": items}


def loan_view(loan: Loan, policy: Policy, now: datetime, suspensions: Sequence[Suspension] = ()) -> dict:
    until = loan.returned_at or now
    excused = (suspensions, policy.grace_days)
    return {"id": loan.id, "reservation_id": loan.reservation_id, "title_id": loan.title_id, "title": loan.title,
            "barcode": loan.barcode, "started_at": loan.started_at, "due_at": loan.due_at,
            "returned_at": loan.returned_at, "days_overdue": domain.days_overdue(loan.due_at, until, *excused),
            "fine_cents": policy.fines.fine(loan.due_at, until, *excused), "reminders_sent": loan.reminder_step}


def patron_loans(session: Session, card: str, policy: Policy, now: datetime) -> list[dict]:
    loans = session.scalars(select(Loan).where(Loan.patron == card).order_by(Loan.started_at.desc())).all()
    suspended = suspensions.as_run(session)
    return [loan_view(loan, policy, now, suspended) for loan in loans]


def account(session: Session, card: str, policy: Policy, now: datetime) -> dict:
    loans = patron_loans(session, card, policy, now)
    open_reservations = session.scalars(select(Reservation).where(
        Reservation.patron == card, Reservation.status.in_(domain.OPEN_STATUSES))).all()
    held = sum(ln.status in domain.OPEN_LINE_STATUSES for r in open_reservations for ln in r.lines)
    on_loan = [ln for ln in loans if ln["returned_at"] is None]
    return {"card": card, "open_reservations": len(open_reservations), "documents_reserved": held,
            "documents_on_loan": len(on_loan), "quota": policy.quota.max_items,
            "quota_left": policy.quota.left(held + len(on_loan)),
            "overdue_loans": sum(ln["days_overdue"] > 0 and ln["returned_at"] is None for ln in loans),
            "fines_cents": sum(ln["fine_cents"] for ln in loans),
            "fines": [{"loan_id": ln["id"], "title": ln["title"], "days_overdue": ln["days_overdue"],
                       "fine_cents": ln["fine_cents"]} for ln in loans if ln["fine_cents"]]}
