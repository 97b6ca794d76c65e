"""Who prepares what: a reservation or a selection claimed by one member of staff at a time (the rule:
`domain.ensure_free_to_prepare`). Inside the caller's transaction."""

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from services.common.auth import Principal
from services.common.errors import Conflict, NotFound


def claim(session: Session, model: type, item_id: str, principal: Principal, now: datetime,
          open_statuses: tuple[str, ...]) -> None:
    """Take a reservation or a selection to prepare: one conditional update, so two members of staff who
    claim at once cannot both get it."""
    table = model.__table__
    taken = session.execute(update(table).where(
        table.c.id == item_id, table.c.status.in_(open_statuses),
        or_(table.c.claimed_by.is_(None), table.c.claimed_by == principal.subject))
        .values(claimed_by=principal.subject, claimed_at=now)).rowcount
    if taken != 1:
        _refuse(session, model, item_id, "claim")


def release(session: Session, model: type, item_id: str, principal: Principal) -> None:
    table = model.__table__
    released = session.execute(update(table).where(
        table.c.id == item_id, or_(table.c.claimed_by.is_(None), table.c.claimed_by == principal.subject))
        .values(claimed_by=None, claimed_at=None)).rowcount
    if released != 1:
        _refuse(session, model, item_id, "release")


def _refuse(session: Session, model: type, item_id: str, what: str) -> None:
    row = session.get(model, item_id, populate_existing=True)
    kind = model.__tablename__.rstrip("s")
    if row is None:
        raise NotFound(f"no {kind} {item_id}", id=item_id)
    if row.claimed_by:
        raise Conflict(f"{row.claimed_by} is preparing this {kind}", claimed_by=row.claimed_by)
    raise Conflict(f"a {kind} that is {row.status} cannot be {what}ed", status=row.status)
