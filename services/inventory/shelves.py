"""Inventory's work on copies and waitlists, inside the caller's transaction.

Every change to who holds a title's copies happens under a lock on that title's row: allocating the last
copy and queueing on the waitlist (`allocation`), or freeing a copy and serving the waitlist's head, can then
never interleave — no copy held twice, no copy left on the shelf while someone waits, across replicas."""

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.common.database import insert_new
from services.common.errors import Conflict, NotFound
from services.inventory.models import ClosedReservation, Copy, CopyHistory, Title, WaitlistEntry


def lock_titles(session: Session, title_ids: Iterable[str]) -> list[str]:
    """Lock these titles' rows, in the database's order of their ids — the one order every change to who holds
    copies takes them in, so two transactions wait for each other rather than deadlock. Returns those found.
    (FOR UPDATE applies after ORDER BY: the rows are locked in that order.)"""
    return list(session.scalars(select(Title.id).where(Title.id.in_(sorted(set(title_ids)))).order_by(Title.id)
                                .with_for_update()))


def closed_among(session: Session, reservation_ids: Iterable[str]) -> set[str]:
    """The reservations among these that reservations has closed. Asked under the titles' locks, it sees every
    closing that `close` committed before them (a closing takes the same locks)."""
    ids = list(set(reservation_ids))
    return set(session.scalars(select(ClosedReservation.reservation_id)
                               .where(ClosedReservation.reservation_id.in_(ids)))) if ids else set()


def lock_title(session: Session, title_id: str) -> Title:
    title = session.scalars(select(Title).where(Title.id == title_id).with_for_update()).first()
    if title is None:
        raise NotFound(f"unknown title {title_id}", title_id=title_id)
    return title


def note(session: Session, barcode: str, what: str, reservation_id: str | None = None, **detail: Any) -> None:
    session.add(CopyHistory(barcode=barcode, what=what, reservation_id=reservation_id, detail=detail))


def _take(session: Session, copy: Copy, reservation_id: str, line_id: str) -> None:
    # Conditional update: a copy leaves the shelf only if it is still there (belt and braces under the lock).
    taken = session.execute(
        update(Copy).where(Copy.barcode == copy.barcode, Copy.status == "available")
        .values(status="allocated", reservation_id=reservation_id, line_id=line_id, quarantine_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise Conflict(f"copy {copy.barcode} was taken meanwhile")
    copy.status, copy.reservation_id, copy.line_id, copy.quarantine_until = "allocated", reservation_id, line_id, None
    note(session, copy.barcode, "allocated", reservation_id, line_id=line_id)


def allocation(copy: Copy, needs_transfer: bool) -> dict:
    return {"line_id": copy.line_id, "title_id": copy.title_id, "barcode": copy.barcode, "site": copy.site,
            "shelf_mark": copy.shelf_mark, "needs_transfer": needs_transfer}


def free_copy(session: Session, copy: Copy, reason: str) -> tuple[str, dict]:
    """A copy comes free (released, quarantine over, new): the head of the title's waitlist gets it, else
    it goes back on the shelf. Returns the event to publish: (type, data)."""
    lock_title(session, copy.title_id)
    copy.status, copy.reservation_id, copy.line_id, copy.quarantine_until = "available", None, None, None
    session.flush()
    head = session.scalars(
        select(WaitlistEntry).where(WaitlistEntry.title_id == copy.title_id, WaitlistEntry.status == "waiting")
        .order_by(WaitlistEntry.id).limit(1)
    ).first()
    if head is not None:
        head.status = "served"
        _take(session, copy, head.reservation_id, head.line_id)
        return "items_allocated", {"reservation_id": head.reservation_id, "reason": "waitlist",
                                   "lines": [allocation(copy, copy.site != head.pickup_site)]}
    note(session, copy.barcode, "on_shelf", reason=reason)
    return "copy_available", {"barcode": copy.barcode, "title_id": copy.title_id, "site": copy.site,
                              "shelf_mark": copy.shelf_mark, "reason": reason}


def close(session: Session, reservation_id: str, title_ids: Iterable[str], why: str) -> list[tuple[str, dict]]:
    """A reservation ended without collection (`why`: cancelled, expired): its copies go back, its waitlist
    places are withdrawn, and it is recorded as closed so that a placement handled later takes nothing for it.

    All of it under its titles' locks, taken first: an allocation of it under way (on any replica) commits
    before this reads what it holds, and one that comes after sees it closed. Returns the events to publish."""
    lock_titles(session, title_ids)
    session.execute(insert_new(session, ClosedReservation.__table__).values(reservation_id=reservation_id, why=why))
    session.execute(update(WaitlistEntry).where(WaitlistEntry.reservation_id == reservation_id,
                                                WaitlistEntry.status == "waiting").values(status="withdrawn"))
    # Read after the locks (and past the session's own copies): what allocations committed meanwhile is seen.
    held = session.scalars(select(Copy).where(Copy.reservation_id == reservation_id, Copy.status == "allocated")
                           .order_by(Copy.title_id, Copy.barcode).execution_options(populate_existing=True)).all()
    return [free_copy(session, copy, "released") for copy in held]


def lend(session: Session, reservation_id: str, loans: Iterable[dict]) -> None:
    for loan in loans:
        copy = session.get(Copy, loan["barcode"])
        if copy is None or copy.reservation_id != reservation_id:
            continue  # not ours to lend: the reservation no longer holds it
        copy.status = "on_loan"
        note(session, copy.barcode, "on_loan", reservation_id, loan_id=loan["loan_id"], due_at=str(loan["due_at"]))


def check_in(session: Session, barcode: str, returned_at: datetime, release_at: datetime) -> dict:
    copy = session.scalars(select(Copy).where(Copy.barcode == barcode).with_for_update()).first()
    if copy is None:
        raise NotFound(f"unknown barcode {barcode}", barcode=barcode)
    if copy.status != "on_loan":
        raise Conflict(f"copy {barcode} is not on loan (it is {copy.status})", status=copy.status)
    returned = {"barcode": barcode, "title_id": copy.title_id, "reservation_id": copy.reservation_id,
                "line_id": copy.line_id, "site": copy.site, "returned_at": returned_at,
                "quarantine_until": release_at}
    copy.status, copy.quarantine_until = "quarantine", release_at
    copy.reservation_id = copy.line_id = None
    note(session, barcode, "returned", returned["reservation_id"], returned_at=returned_at.isoformat(),
         quarantine_until=release_at.isoformat())
    return returned


def due_from_quarantine(session: Session, now: datetime, limit: int = 100) -> list[Copy]:
    """Copies whose quarantine is over, claimed so that two replicas never release the same one."""
    return list(session.scalars(
        select(Copy).where(Copy.status == "quarantine", Copy.quarantine_until <= now)
        .order_by(Copy.quarantine_until).limit(limit).with_for_update(skip_locked=True)
    ))


def new_id() -> str:
    return str(uuid.uuid4())


def copy_with_title(session: Session, barcode: str) -> tuple[Copy, Title]:
    copy = session.get(Copy, barcode)
    if copy is None:
        raise NotFound(f"unknown barcode {barcode}", barcode=barcode)
    return copy, session.get(Title, copy.title_id)
