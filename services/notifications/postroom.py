"""The post room: deliveries recorded from events, claimed when due, settled after the attempt — each step in
its own transaction, so a crash between recording and sending loses nothing and sends nothing twice."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from services.common.envelope import Event
from services.common.relay import Events
from services.common.types import UtcDateTime
from services.notifications import domain
from services.notifications.messages import Templates, facts, should_announce
from services.notifications.models import ContactRecord, CopyReturn, Delivery, PolicyState, ReservationState

RESERVATION_STATUS = {"reservation_placed": "placed", "reservation_ready": "ready",
                      "reservation_collected": "collected", "reservation_cancelled": "cancelled",
                      "reservation_expired": "expired", "items_allocated": "allocated"}
LEASE = timedelta(minutes=2)  # a delivery being sent by a process that died is tried again after this
CONTACTS, DELIVERIES = ContactRecord.__table__, Delivery.__table__


def contact_of(record: Any) -> domain.Contact:
    """From a `ContactRecord` or a row of `contacts`."""
    return domain.Contact(record.card, record.email, record.phone, record.preferred_channel, record.language,
                          record.sms_consent)


def learn(session: Session, event: Event) -> None:
    """Keep what later decides whether a waiting message still holds."""
    data = event.data
    status = RESERVATION_STATUS.get(event.type)
    if status and data.get("reservation_id"):
        upsert_state(session, data["reservation_id"], status, event.occurred_at)
    if event.type == "item_returned":
        session.merge(CopyReturn(barcode=data["barcode"], returned_at=data["returned_at"]))
    if event.type == "continuity_policy_changed":
        value = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}
        session.merge(PolicyState(name="continuity", value=value))


# One statement, the same on PostgreSQL and SQLite, and written out: SQLAlchemy never caches the compiled form of
# the PostgreSQL dialect's INSERT … ON CONFLICT (it would compile it again for every event).
UPSERT_STATE = text(
    "INSERT INTO reservation_states (reservation_id, status, updated_at) VALUES (:id, :status, :at) "
    "ON CONFLICT (reservation_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at "
    "WHERE excluded.status <> 'allocated' "
    "OR reservation_states.status NOT IN ('ready', 'collected', 'cancelled', 'expired')"
).bindparams(bindparam("at", type_=UtcDateTime()))


def upsert_state(session: Session, reservation_id: str, status: str, at: datetime) -> None:
    """The reservation's latest status, in one round trip: an `allocated` that arrives after the reservation was
    made ready (or ended) does not take it back."""
    session.execute(UPSERT_STATE, {"id": reservation_id, "status": status, "at": at})


def reminders_suspended(session: Session, now: datetime) -> bool:
    """While the library suspends reminders (continuity mode), overdue reminders are recorded as suppressed."""
    state = session.get(PolicyState, "continuity")
    if state is None or not state.value.get("suspended"):
        return False
    starts, ends = state.value.get("starts_at"), state.value.get("ends_at")
    return ((starts is None or datetime.fromisoformat(starts) <= now)
            and (ends is None or now < datetime.fromisoformat(ends)))


def record(session: Session, events: Events, templates: Templates, quiet: domain.QuietHours, event: Event,
           now: datetime) -> list[Delivery]:
    """One delivery per channel the patron can be reached on, recorded before any attempt."""
    learn(session, event)
    if not should_announce(event.type, event.data) or not event.data.get("patron"):
        return []
    patron = event.data["patron"]
    known = facts(event.type, event.data)
    record_ = session.execute(select(CONTACTS).where(CONTACTS.c.card == patron)).first()
    base = {"event_id": event.id, "event_type": event.type, "announced_at": event.occurred_at, "patron": patron,
            "reservation_id": event.data.get("reservation_id"), "barcode": event.data.get("barcode")}
    if record_ is None or not domain.channels_for(contact_of(record_)):
        delivery = Delivery(id=str(uuid.uuid4()), channel="none", status="failed", attempts=0,
                            last_error="no contact details for this card", **base)
        session.add(delivery)
        events.publish(session, "notification_failed", outcome(delivery, "no_contact"))
        return [delivery]
    contact = contact_of(record_)
    suppressed = event.type == "loan_overdue" and reminders_suspended(session, now)
    created = []
    for channel in domain.channels_for(contact):
        subject, body = templates.render(event.type, channel, contact.language, known)
        due = quiet.next_allowed(now) if channel == "sms" else now
        row = dict(id=str(uuid.uuid4()), channel=channel, recipient=contact.email if channel == "email"
                   else contact.phone, subject=subject, body=body, attempts=0, next_attempt_at=due,
                   held_for_quiet_hours=due > now, status="suppressed" if suppressed else "pending",
                   created_at=now, **base)
        session.execute(insert(DELIVERIES), row)  # Core: the ORM unit of work costs more than the INSERT itself
        created.append(Delivery(**row))
    return created


def claim_due(session: Session, now: datetime, limit: int = 200) -> list[Delivery]:
    """Due deliveries, claimed with SKIP LOCKED and leased, so two replicas never send the same one. One statement
    (UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING), not one UPDATE per claimed row."""
    due = (select(Delivery.id).where(Delivery.status.in_(("pending", "sending")), Delivery.next_attempt_at <= now)
           .order_by(Delivery.next_attempt_at).limit(limit).with_for_update(skip_locked=True))
    claimed = session.scalars(
        update(Delivery).where(Delivery.id.in_(due))
        .values(status="sending", next_attempt_at=now + LEASE, attempts=Delivery.attempts + 1)
        .returning(Delivery), execution_options={"synchronize_session": False, "populate_existing": True}).all()
    return sorted(claimed, key=lambda d: d.announced_at)


def still_holds(session: Session, delivery: Delivery) -> bool:
    if delivery.attempts <= 1 and not delivery.held_for_quiet_hours:
        return True  # it goes at once: nothing could have changed
    state = session.get(ReservationState, delivery.reservation_id) if delivery.reservation_id else None
    returned = session.get(CopyReturn, delivery.barcode) if delivery.barcode else None
    return domain.still_holds(delivery.event_type, delivery.announced_at, state.status if state else None,
                              returned.returned_at if returned else None)


def outcome(delivery: Delivery, reason: str | None = None) -> dict[str, Any]:
    return {"delivery_id": delivery.id, "event_id": delivery.event_id, "event_type": delivery.event_type,
            "patron": delivery.patron, "channel": delivery.channel, "attempts": delivery.attempts,
            "reason": reason, "reservation_id": delivery.reservation_id}


def settle(session: Session, events: Events, delivery_id: str, now: datetime, error: str | None = None,
           permanent: bool = False, max_attempts: int = 6, drop_as: str | None = None,
           retry_base_seconds: float = 30) -> Delivery:
    delivery = session.get(Delivery, delivery_id, with_for_update=True)
    if drop_as:
        delivery.status, delivery.last_error = drop_as, None
    elif error is None:
        delivery.status, delivery.sent_at, delivery.last_error = "sent", now, None
        events.publish(session, "notification_sent", outcome(delivery))
    elif permanent or delivery.attempts >= max_attempts:
        delivery.status, delivery.last_error = "failed", error
        events.publish(session, "notification_failed", outcome(delivery, "permanent" if permanent else "exhausted"))
    else:
        delivery.status, delivery.last_error = "pending", error
        delivery.next_attempt_at = domain.retry_at(delivery.attempts, now, retry_base_seconds)
    return delivery


def mark_sent(session: Session, events: Events, delivery_ids: Sequence[str], now: datetime) -> list[Delivery]:
    """`settle` for a batch of successes: one UPDATE … RETURNING for all of them, then their `notification_sent`."""
    if not delivery_ids:
        return []
    sent = session.scalars(
        update(Delivery).where(Delivery.id.in_(delivery_ids)).values(status="sent", sent_at=now, last_error=None)
        .returning(Delivery), execution_options={"synchronize_session": False, "populate_existing": True}).all()
    for delivery in sent:
        events.publish(session, "notification_sent", outcome(delivery))
    return list(sent)


def settle_all(session: Session, events: Events, results: Sequence[tuple[str, str | None, bool, str | None]],
               now: datetime, max_attempts: int = 6, retry_base_seconds: float = 30) -> None:
    """The outcome of a batch of attempts, `(delivery_id, error, permanent, drop_as)` each: the successes in bulk,
    the rest (dropped, failed, to retry: few) one by one."""
    mark_sent(session, events, [d for d, error, _, drop_as in results if error is None and not drop_as], now)
    for delivery_id, error, permanent, drop_as in results:
        if error is not None or drop_as:
            settle(session, events, delivery_id, now, error, permanent, max_attempts, drop_as, retry_base_seconds)


def resend(session: Session, delivery: Delivery, now: datetime) -> None:
    delivery.status, delivery.attempts, delivery.next_attempt_at, delivery.last_error = "pending", 0, now, None


def erase(session: Session, card: str) -> int:
    """Right to erasure: the contact record goes, and its deliveries keep no personal field."""
    found = session.get(ContactRecord, card)
    if found is not None:
        session.delete(found)
    return session.execute(update(Delivery).where(Delivery.patron == card)
                           .values(recipient=None, subject=None, body=None)).rowcount


def log_of(session: Session, patron: str | None, event_id: str | None, status: str | None,
           limit: int) -> Sequence[Delivery]:
    query = select(Delivery).order_by(Delivery.created_at.desc()).limit(limit)
    for column, value in ((Delivery.patron, patron), (Delivery.event_id, event_id), (Delivery.status, status)):
        if value:
            query = query.where(column == value)
    return session.scalars(query).all()

