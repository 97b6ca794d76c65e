"""What inventory's events change in reservations: copies set aside or waited for, returns, the catalogue's
replica. Inside the caller's transaction; the hot path is written in Core, a few statements per batch."""

from collections.abc import Sequence

from sqlalchemy import Case, ColumnElement, case, select, text, update
from sqlalchemy.orm import Session

from services.common.database import is_postgres
from services.reservations import domain
from services.reservations.models import CatalogueTitle, Line, Loan, Reservation


def record_allocation(session: Session, events: Sequence[dict]) -> None:
    """`items_allocated` (the data of many events): straight conditional updates, no read first, two statements
    for the whole batch. A line takes its copy only while it still waits for one, and a reservation moves on
    only from where `domain.TRANSITIONS` allows (placed)."""
    lines = _lines_of(events)
    if not lines:
        return
    table, reservations = Line.__table__, Reservation.__table__  # Core, not the ORM's bulk update: less CPU
    _lock_reservations(session, lines)
    if is_postgres(session):
        session.execute(_ALLOCATE_LINES, _columns_of(lines))
    else:
        session.execute(update(table).where(*_line_is(lines), table.c.status.in_(domain.WAITING_LINE_STATUSES))
                        .values(status="allocated", waitlist_position=None, barcode=_per_line(lines, "barcode"),
                                site=_per_line(lines, "site"), shelf_mark=_per_line(lines, "shelf_mark"),
                                needs_transfer=_per_line(lines, "needs_transfer")))
    session.execute(update(reservations).where(reservations.c.id.in_({rid for rid, _ in lines.values()}),
                                               reservations.c.status.in_(domain.ALLOCATABLE))
                    .values(status="allocated"))


# PostgreSQL: the lines' new values as arrays, one statement whatever the batch's size, compiled once (the CASE
# expressions of the portable form are built, cache-keyed and compiled again for every batch size).
_LINES = Line.__tablename__
_ALLOCATE_LINES = text(
    f"UPDATE {_LINES} SET status = 'allocated', waitlist_position = NULL, barcode = v.barcode, site = v.site, "
    "shelf_mark = v.shelf_mark, needs_transfer = v.needs_transfer "
    "FROM unnest(CAST(:ids AS text[]), CAST(:reservation_ids AS text[]), CAST(:barcodes AS text[]), "
    "CAST(:sites AS text[]), CAST(:shelf_marks AS text[]), CAST(:needs_transfer AS boolean[])) "
    "AS v(id, reservation_id, barcode, site, shelf_mark, needs_transfer) "
    f"WHERE {_LINES}.id = v.id AND {_LINES}.reservation_id = v.reservation_id AND {_LINES}.status IN ("
    + ", ".join(f"'{status}'" for status in domain.WAITING_LINE_STATUSES) + ")")


def _columns_of(lines: dict[str, tuple[str, dict]]) -> dict[str, list]:
    return {"ids": list(lines), "reservation_ids": [rid for rid, _ in lines.values()],
            "barcodes": [line["barcode"] for _, line in lines.values()],
            "sites": [line["site"] for _, line in lines.values()],
            "shelf_marks": [line["shelf_mark"] for _, line in lines.values()],
            "needs_transfer": [bool(line["needs_transfer"]) for _, line in lines.values()]}


def record_waiting(session: Session, events: Sequence[dict]) -> None:
    """`items_unavailable` (the data of many events): one conditional update for the whole batch."""
    lines = _lines_of(events)
    if lines:
        table = Line.__table__
        _lock_reservations(session, lines)
        session.execute(update(table).where(*_line_is(lines), table.c.status.in_(domain.WAITLISTABLE_LINE_STATUSES))
                        .values(status="waitlisted", waitlist_position=_per_line(lines, "waitlist_position")))


def _lock_reservations(session: Session, lines: dict[str, tuple[str, dict]]) -> None:
    """Lock the reservations first, in id order, as a cancellation does (reservation, then its lines): lines
    first here would deadlock against a cancellation holding its reservation, and PostgreSQL would abort it."""
    reservations = Reservation.__table__
    session.execute(select(reservations.c.id).where(reservations.c.id.in_({rid for rid, _ in lines.values()}))
                    .order_by(reservations.c.id).with_for_update())


def _lines_of(events: Sequence[dict]) -> dict[str, tuple[str, dict]]:
    """line id → (reservation id, the event's line); a line named twice keeps its first mention, as one
    statement per event would (the second update would find the line no longer waiting)."""
    lines: dict[str, tuple[str, dict]] = {}
    for data in events:
        for line in data["lines"]:
            lines.setdefault(line["line_id"], (data["reservation_id"], line))
    return lines


def _line_is(lines: dict[str, tuple[str, dict]]) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    # The line, and only if it belongs to the reservation the event names.
    line = Line.__table__.c
    return line.id.in_(list(lines)), line.reservation_id == case({k: rid for k, (rid, _) in lines.items()},
                                                                  value=line.id)


def _per_line(lines: dict[str, tuple[str, dict]], key: str) -> Case:
    """The value of `key` for each line, in one expression: `CASE id WHEN … THEN … END`."""
    return case({k: line[key] for k, (_, line) in lines.items()}, value=Line.__table__.c.id)


def record_return(session: Session, data: dict) -> None:
    query = select(Loan).where(Loan.barcode == data["barcode"], Loan.returned_at.is_(None))
    if data.get("line_id"):
        query = query.where(Loan.line_id == data["line_id"])
    for loan in session.scalars(query.with_for_update()):
        loan.returned_at = data["returned_at"]


def record_title(session: Session, data: dict) -> None:
    title = session.get(CatalogueTitle, data["title_id"]) or CatalogueTitle(id=data["title_id"])
    title.title, title.author, title.material = data["title"], data["author"], data["material"]
    session.add(title)

