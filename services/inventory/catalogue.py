"""The catalogue: titles and copies added by staff or imported, searched by anyone."""

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.errors import Conflict, Invalid, NotFound
from services.common.relay import Events
from services.inventory.domain import CatalogueRow, availability, normalise_isbn, search_terms
from services.inventory.models import Copy, CopyHistory, Title, WaitlistEntry
from services.inventory.shelves import free_copy, new_id, note


def catalogued(title: Title) -> dict:
    return {"title_id": title.id, "title": title.title, "author": title.author, "isbn": title.isbn,
            "material": title.material}


def add_title(session: Session, outbox: Events, title: str, author: str, isbn: str | None, material: str) -> Title:
    isbn = normalise_isbn(isbn)
    if isbn and session.scalar(select(Title.id).where(Title.isbn == isbn)):
        raise Conflict(f"a title with ISBN {isbn} is already catalogued", isbn=isbn)
    record = Title(id=new_id(), title=title, author=author, isbn=isbn, material=material)
    session.add(record)
    session.flush()
    outbox.publish(session, "title_catalogued", catalogued(record))
    return record


def add_copy(session: Session, outbox: Events, title_id: str, barcode: str, site: str, shelf_mark: str,
             plastic_cover: bool, sites: Sequence[str]) -> Copy:
    if site not in sites:
        raise Invalid(f"site {site!r} is not one of {', '.join(sites)}", field="site")
    if session.get(Title, title_id) is None:
        raise NotFound(f"unknown title {title_id}", title_id=title_id)
    if session.get(Copy, barcode) is not None:
        raise Conflict(f"barcode {barcode} is already in use", barcode=barcode)
    copy = Copy(barcode=barcode, title_id=title_id, site=site, shelf_mark=shelf_mark,
                plastic_cover=plastic_cover, status="new")
    session.add(copy)
    session.flush()
    note(session, barcode, "catalogued")
    # A new copy is a copy coming free: someone may be waiting for this title.
    outbox.publish(session, *free_copy(session, copy, "released"))
    return copy


def import_rows(session: Session, outbox: Events, rows: Sequence[CatalogueRow], sites: Sequence[str]) -> dict:
    """All rows in the caller's transaction: a failure anywhere writes nothing."""
    titles_created = copies_created = 0
    for row in rows:
        key = Title.isbn == row.isbn if row.isbn else (Title.title == row.title) & (Title.author == row.author)
        title = session.scalars(select(Title).where(key)).first()
        if title is None:
            title = add_title(session, outbox, row.title, row.author, row.isbn, row.material)
            titles_created += 1
        try:
            with session.begin_nested():
                add_copy(session, outbox, title.id, row.barcode, row.site, row.shelf_mark, row.plastic_cover,
                         sites)
        except (Conflict, IntegrityError) as exc:
            raise Invalid(f"line {row.line}: barcode {row.barcode} is already in use; nothing was imported",
                          rows=[{"line": row.line, "error": "barcode already in use"}]) from exc
        copies_created += 1
    return {"titles_created": titles_created, "copies_created": copies_created}


def describe(session: Session, titles: Sequence[Title], sites: Sequence[str]) -> list[dict]:
    ids = [t.id for t in titles]
    copies = session.execute(select(Copy.title_id, Copy.site, Copy.status).where(Copy.title_id.in_(ids))).all()
    waiting = dict(session.execute(
        select(WaitlistEntry.title_id, func.count()).where(WaitlistEntry.title_id.in_(ids),
                                                           WaitlistEntry.status == "waiting")
        .group_by(WaitlistEntry.title_id)).all())
    return [{**catalogued(t), "id": t.id,
             "availability": availability([(s, st) for tid, s, st in copies if tid == t.id], sites),
             "waitlist": waiting.get(t.id, 0)} for t in titles]


def search(session: Session, q: str, limit: int, offset: int, sites: Sequence[str]) -> dict:
    query = select(Title)
    for term in search_terms(q):
        digits = term.replace("-", "")
        like = f"%{term.lower()}%"
        query = query.where(or_(func.lower(Title.title).like(like), func.lower(Title.author).like(like),
                                Title.isbn == digits))
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    titles = session.scalars(query.order_by(Title.title, Title.id).limit(limit).offset(offset)).all()
    return {"total": total, "titles": describe(session, titles, sites)}


def title_detail(session: Session, title_id: str, sites: Sequence[str]) -> dict:
    title = session.get(Title, title_id)
    if title is None:
        raise NotFound(f"unknown title {title_id}", title_id=title_id)
    return describe(session, [title], sites)[0]


def copy_detail(session: Session, barcode: str) -> dict:
    copy = session.get(Copy, barcode)
    if copy is None:
        raise NotFound(f"unknown barcode {barcode}", barcode=barcode)
    history = session.scalars(select(CopyHistory).where(CopyHistory.barcode == barcode)
                              .order_by(CopyHistory.id)).all()
    return {**{c: getattr(copy, c) for c in ("barcode", "title_id", "site", "shelf_mark", "plastic_cover",
                                             "status", "reservation_id", "quarantine_until")},
            "title": session.get(Title, copy.title_id).title,
            "history": [{"at": h.at, "what": h.what, "reservation_id": h.reservation_id, "detail": h.detail}
                        for h in history]}
