"""What `drive check` asks inventory: the copies set aside and the waitlist places, each with the line it is for."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.inventory.models import Copy, WaitlistEntry


def holdings(session: Session) -> dict:
    copies, waitlist = Copy.__table__.c, WaitlistEntry.__table__.c
    held = session.execute(select(copies.reservation_id, copies.line_id, copies.title_id, copies.barcode)
                           .where(copies.status == "allocated").order_by(copies.title_id, copies.barcode))
    waiting = session.execute(select(waitlist.reservation_id, waitlist.line_id, waitlist.title_id)
                              .where(waitlist.status == "waiting").order_by(waitlist.title_id, waitlist.id))
    return {"held": [dict(row) for row in held.mappings()], "waiting": [dict(row) for row in waiting.mappings()]}
