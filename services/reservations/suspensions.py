"""Suspensions of overdue reminders and fines (continuity mode, as in lockdown), in the caller's transaction:
suspend, resume, and what they were. The rules (`Suspension`, days not counted) are in `continuity`."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.auth import Principal
from services.common.errors import Conflict
from services.common.relay import Events
from services.reservations.continuity import Suspension, check_period
from services.reservations.models import SuspensionRecord


def as_run(session: Session) -> list[Suspension]:
    """Every suspension as it finally ran (a resumed one ends when it was resumed)."""
    return [Suspension(s.starts_at, s.resumed_at or s.ends_at)
            for s in session.scalars(select(SuspensionRecord).order_by(SuspensionRecord.starts_at))]


def current(session: Session, now: datetime) -> SuspensionRecord | None:
    return session.scalars(select(SuspensionRecord).where(
        SuspensionRecord.resumed_at.is_(None), SuspensionRecord.ends_at > now).order_by(SuspensionRecord.starts_at)
    ).first()


def continuity_view(session: Session, now: datetime, grace_days: int) -> dict:
    active = current(session, now)
    history = session.scalars(select(SuspensionRecord).order_by(SuspensionRecord.starts_at.desc())).all()
    return {"suspended": bool(active and active.starts_at <= now), "current": active, "grace_days": grace_days,
            "suspensions": history}


def _announce(session: Session, events: Events, record: SuspensionRecord | None, grace_days: int, by: str) -> None:
    events.publish(session, "continuity_policy_changed", {
        "suspended": record is not None, "suspension_id": record.id if record else None,
        "starts_at": record.starts_at if record else None, "ends_at": record.ends_at if record else None,
        "reason": record.reason if record else None, "grace_days": grace_days, "changed_by": by})


def suspend(session: Session, events: Events, principal: Principal, starts_at: datetime, ends_at: datetime,
            reason: str, now: datetime, grace_days: int) -> SuspensionRecord:
    check_period(starts_at, ends_at)
    if current(session, now) is not None:
        raise Conflict("a suspension is already planned or running: resume it first")
    record = SuspensionRecord(id=str(uuid.uuid4()), starts_at=starts_at, ends_at=ends_at, reason=reason,
                              created_by=principal.subject, created_at=now)
    session.add(record)
    _announce(session, events, record, grace_days, principal.subject)
    return record


def resume(session: Session, events: Events, principal: Principal, now: datetime, grace_days: int) -> SuspensionRecord:
    record = current(session, now)
    if record is None:
        raise Conflict("reminders and fines are not suspended")
    record.resumed_at = max(now, record.starts_at)
    _announce(session, events, None, grace_days, principal.subject)
    return record
