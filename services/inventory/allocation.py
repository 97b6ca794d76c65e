"""Allocating copies to reservations' lines, many reservations in one transaction (the caller's).

Who holds a title's copies changes only under a lock on that title's row (see `shelves`). A batch locks all
its titles in one statement, in the database's order of their ids — the order every allocation takes them
in — so batches on two replicas wait for each other rather than deadlock, and no copy goes to two lines.
Inside a batch, reservations are served in their arrival order: first come, first served on the shelf and
on the waitlist. A handful of statements per batch, not per line: that is what makes a batch cheap."""

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, select, text, union, update
from sqlalchemy.orm import Session

from services.common.database import is_postgres
from services.common.errors import Conflict, NotFound
from services.inventory import shelves
from services.inventory.domain import pick_copy
from services.inventory.models import Copy, CopyHistory, Title, WaitlistEntry

# SQLAlchemy Core on the tables, not the ORM: nothing here needs objects, and the ORM's layer cost about as much
# CPU as the statements themselves.
COPIES, HISTORY, TITLES, WAITLIST = Copy.__table__, CopyHistory.__table__, Title.__table__, WaitlistEntry.__table__


@dataclass(frozen=True)
class Request:
    reservation_id: str
    pickup_site: str
    lines: list[dict]


Shelf = dict[str, dict[str, list[dict]]]  # title → site → copies on the shelf, lowest barcode first


def allocate(session: Session, requests: list[Request]) -> list[tuple[list[dict], list[dict]]]:
    """For each request, in order: (lines allocated a copy, lines put on their title's waitlist). A line
    already holding a copy or a waitlist place (its reservation released twice, say) is left alone, and so is
    every line of a reservation already closed (its cancellation handled before its placement)."""
    titles = sorted({line["title_id"] for request in requests for line in request.lines})
    _lock_titles(session, titles)
    done = _already_handled(session, titles, [line["line_id"] for r in requests for line in r.lines])
    closed = shelves.closed_among(session, [r.reservation_id for r in requests])
    todo = []
    for r in requests:
        lines = [line for line in sorted(r.lines, key=lambda ln: (ln["title_id"], ln["line_id"]))
                 if line["line_id"] not in done and r.reservation_id not in closed]
        done.update(line["line_id"] for line in lines)  # a line named twice in the batch is served once
        todo.append(lines)
    shelf = _shelf(session, Counter(line["title_id"] for lines in todo for line in lines))
    results, taken, queued = [], [], []
    for request, lines in zip(requests, todo, strict=True):
        allocated, waiting = [], []
        for line in lines:
            copy = pick_copy(shelf.get(line["title_id"], {}), request.pickup_site)
            if copy is None:
                waiting.append({"line_id": line["line_id"], "title_id": line["title_id"], "title": line.get("title"),
                                "waitlist_position": None})
                queued.append({"title_id": line["title_id"], "reservation_id": request.reservation_id,
                               "line_id": line["line_id"], "pickup_site": request.pickup_site})
                continue
            taken.append((copy, request.reservation_id, line["line_id"]))
            allocated.append({"line_id": line["line_id"], "title_id": copy["title_id"], "barcode": copy["barcode"],
                              "site": copy["site"], "shelf_mark": copy["shelf_mark"],
                              "needs_transfer": copy["site"] != request.pickup_site})
        results.append((allocated, waiting))
    _take(session, taken)
    positions = _queue(session, queued)
    for _, waiting in results:
        for line in waiting:
            line["waitlist_position"] = positions[line["line_id"]]
    return results


def _lock_titles(session: Session, title_ids: list[str]) -> None:
    found = shelves.lock_titles(session, title_ids)
    missing = sorted(set(title_ids) - set(found))
    if missing:
        raise NotFound(f"unknown title {missing[0]}", title_id=missing[0])


def _already_handled(session: Session, title_ids: list[str], line_ids: list[str]) -> set[str]:
    # A line's copy is of the line's title: the title narrows the search to an index.
    held = select(COPIES.c.line_id).where(COPIES.c.title_id.in_(title_ids), COPIES.c.line_id.in_(line_ids))
    queued = select(WAITLIST.c.line_id).where(WAITLIST.c.line_id.in_(line_ids))
    return set(session.scalars(union(held, queued)))


def _shelf(session: Session, wanted: Counter) -> Shelf:
    """The copies that may be chosen: per title and site, as many (lowest barcodes first) as the batch has
    lines of that title. Enough for `domain.pick_copy`: before any line, fewer than that many were taken."""
    if not wanted:
        return {}
    if is_postgres(session):
        rows = session.execute(_SHELF, {"title_ids": list(wanted), "wanted": list(wanted.values())})
    else:
        c = COPIES.c
        rank = func.row_number().over(partition_by=(c.title_id, c.site), order_by=c.barcode).label("rank")
        ranked = (select(c.barcode, c.title_id, c.site, c.shelf_mark, rank)
                  .where(c.title_id.in_(list(wanted)), c.status == "available").subquery())
        limit = case(dict(wanted.items()), value=ranked.c.title_id)
        rows = session.execute(select(ranked).where(ranked.c.rank <= limit).order_by(ranked.c.barcode))
    shelf: Shelf = defaultdict(lambda: defaultdict(list))
    # `order`: the place in the database's barcode order (its collation, not Python's string order).
    for order, row in enumerate(rows.mappings()):
        shelf[row["title_id"]][row["site"]].append({**row, "order": order})
    return shelf


# PostgreSQL: the batch's values as arrays, so that each statement is the same whatever the batch holds and is
# compiled once (the portable CASE forms are built, cache-keyed and compiled again for every batch's shape).
_SHELF = text(
    "SELECT r.barcode, r.title_id, r.site, r.shelf_mark, r.rank FROM ("
    " SELECT barcode, title_id, site, shelf_mark,"
    " row_number() OVER (PARTITION BY title_id, site ORDER BY barcode) AS rank"
    f" FROM {COPIES.name} WHERE title_id = ANY(CAST(:title_ids AS text[])) AND status = 'available') AS r"
    " JOIN unnest(CAST(:title_ids AS text[]), CAST(:wanted AS integer[])) AS w(title_id, wanted)"
    " ON w.title_id = r.title_id WHERE r.rank <= w.wanted ORDER BY r.barcode")
_TAKE = text(
    f"UPDATE {COPIES.name} SET status = 'allocated', quarantine_until = NULL, reservation_id = v.reservation_id,"
    " line_id = v.line_id"
    " FROM unnest(CAST(:barcodes AS text[]), CAST(:reservation_ids AS text[]), CAST(:line_ids AS text[]))"
    f" AS v(barcode, reservation_id, line_id) WHERE {COPIES.name}.barcode = v.barcode"
    f" AND {COPIES.name}.status = 'available'")


def _take(session: Session, taken: list[tuple[dict, str, str]]) -> None:
    if not taken:
        return
    barcodes = [copy["barcode"] for copy, _, _ in taken]
    # One conditional statement for the batch: a copy leaves the shelf only if it is still there.
    barcode = COPIES.c.barcode
    if is_postgres(session):
        moved = session.execute(_TAKE, {"barcodes": barcodes, "reservation_ids": [r for _, r, _ in taken],
                                        "line_ids": [ln for _, _, ln in taken]}).rowcount
    else:
        moved = session.execute(
            update(COPIES).where(barcode.in_(barcodes), COPIES.c.status == "available")
            .values(status="allocated", quarantine_until=None,
                    reservation_id=case({c["barcode"]: r for c, r, _ in taken}, value=barcode),
                    line_id=case({c["barcode"]: ln for c, _, ln in taken}, value=barcode))).rowcount
    if moved != len(taken):
        raise Conflict(f"{len(taken) - moved} of {len(taken)} copies were taken meanwhile")
    # RETURNING makes SQLAlchemy send the rows as one multi-row INSERT, not one round trip each (psycopg2).
    session.execute(insert(HISTORY).returning(HISTORY.c.id), [
        {"barcode": c["barcode"], "what": "allocated", "reservation_id": r, "detail": {"line_id": ln}}
        for c, r, ln in taken])


def _queue(session: Session, queued: list[dict]) -> dict[str, int]:
    """Waitlist places in the batch's order; returns each line's position among its title's waiting lines."""
    if not queued:
        return {}
    # Ids in the batch's order (SQLAlchemy then inserts in parameter order): the order of the waitlist.
    session.execute(insert(WAITLIST).returning(WAITLIST.c.id, sort_by_parameter_order=True), queued)
    w = WAITLIST.c
    rows = session.execute(select(w.line_id, _position()).where(w.line_id.in_([q["line_id"] for q in queued])))
    return dict(rows.tuples().all())


def _position() -> Any:
    """A waitlist entry's place among its title's waiting lines (1 = next to be served)."""
    w, earlier = WAITLIST.c, WAITLIST.alias("earlier").c
    return (select(func.count()).where(earlier.title_id == w.title_id, earlier.status == "waiting",
                                       earlier.id <= w.id).scalar_subquery().label("waitlist_position"))


def standing(session: Session, reservation_id: str, pickup_site: str) -> tuple[list[dict], list[dict]]:
    """What a reservation's lines hold now, in the shapes `allocate` returns: said again to reservations when
    its placement is re-announced (`drive check --fix`), so that a reservation stuck in `placed` moves on."""
    c, w = COPIES.c, WAITLIST.c
    held = session.execute(select(c.line_id, c.title_id, c.barcode, c.site, c.shelf_mark)
                           .where(c.reservation_id == reservation_id, c.status == "allocated")).mappings()
    waiting = session.execute(select(w.line_id, w.title_id, _position())
                              .where(w.reservation_id == reservation_id, w.status == "waiting")).mappings()
    return ([{**row, "needs_transfer": row["site"] != pickup_site} for row in held],
            [{**row, "title": None} for row in waiting])
