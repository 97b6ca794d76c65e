"""The post room: deliveries recorded from events, claimed when due, settled after the attempt — each step in
its own transaction, so a crash between recording and sending loses nothing and sends nothing twice."""

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session, aliased

from services.common.correlation import caused_by
from services.common.database import is_postgres
from services.common.envelope import Event
from services.common.errors import Conflict
from services.common.relay import Events
from services.common.types import UtcDateTime
from services.notifications import domain
from services.notifications.channels import Channel, PermanentDeliveryFailure, TransientFailure
from services.notifications.messages import Templates, facts
from services.notifications.models import ContactRecord, CopyReturn, Delivery, PolicyState, ReservationState

LEASE = timedelta(minutes=2)  # a delivery being sent by a process that died is tried again after this
CONTACTS, DELIVERIES = ContactRecord.__table__, Delivery.__table__
UNSETTLED = ("pending", "sending")
log = logging.getLogger(__name__)


def contact_of(record: Any) -> domain.Contact:
    """From a `ContactRecord` or a row of `contacts`."""
    return domain.Contact(record.card, record.email, record.phone, record.preferred_channel, record.language,
                          record.sms_consent)


def learn(session: Session, event: Event) -> None:
    """Keep what later decides whether a waiting message still holds."""
    learn_all(session, [event])


def learn_all(session: Session, events: Sequence[Event]) -> None:
    """`learn` for a batch, in its order: the reservations' latest states in one statement."""
    states: dict[str, tuple[str, datetime]] = {}
    for event in events:
        data = event.data
        status = domain.RESERVATION_STATUS.get(event.type)
        if status and data.get("reservation_id"):
            states.pop(data["reservation_id"], None)  # the later event of a reservation wins, as one by one
            states[data["reservation_id"]] = (status, event.occurred_at)
        if event.type == "item_returned":
            session.merge(CopyReturn(barcode=data["barcode"], returned_at=data["returned_at"]))
        if event.type == "continuity_policy_changed":
            value = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}
            session.merge(PolicyState(name="continuity", value=value))
    upsert_states(session, states)


# One statement, the same on PostgreSQL and SQLite, and written out: SQLAlchemy never caches the compiled form of
# the PostgreSQL dialect's INSERT … ON CONFLICT (it would compile it again for every event).
UPSERT_STATE = text(
    "INSERT INTO reservation_states (reservation_id, status, updated_at) VALUES (:id, :status, :at) "
    "ON CONFLICT (reservation_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at"
).bindparams(bindparam("at", type_=UtcDateTime()))
# A batch's form on PostgreSQL: the rows as three arrays. One row per reservation: PostgreSQL refuses to update a
# row twice in one statement.
UPSERT_STATES_PG = text(
    "INSERT INTO reservation_states (reservation_id, status, updated_at) "
    "SELECT * FROM unnest(CAST(:ids AS varchar[]), CAST(:statuses AS varchar[]), CAST(:ats AS timestamptz[])) "
    "ON CONFLICT (reservation_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at")


def upsert_state(session: Session, reservation_id: str, status: str, at: datetime) -> None:
    """The reservation's latest status, in one round trip."""
    session.execute(UPSERT_STATE, {"id": reservation_id, "status": status, "at": at})


def upsert_states(session: Session, states: Mapping[str, tuple[str, datetime]]) -> None:
    """The reservations' latest statuses: one round trip on PostgreSQL (the rows as three arrays, `unnest`ed: one
    statement whatever the batch's size, compiled once), one `executemany` on SQLite (no round trips there)."""
    if not states:
        return
    if len(states) == 1 or not is_postgres(session):
        session.execute(UPSERT_STATE, [{"id": id_, "status": status, "at": at}
                                       for id_, (status, at) in states.items()])
        return
    session.execute(UPSERT_STATES_PG, {"ids": list(states), "statuses": [status for status, _ in states.values()],
                                       "ats": [at for _, at in states.values()]})


def reminders_suspended(session: Session, now: datetime) -> bool:
    state = session.get(PolicyState, "continuity")
    return domain.reminders_suspended(state.value if state else None, now)


def record(session: Session, outbox: Events, templates: Templates, quiet: domain.QuietHours, event: Event,
           now: datetime) -> list[Delivery]:
    """One delivery per channel the patron can be reached on, recorded before any attempt."""
    return record_all(session, outbox, templates, quiet, [event], now)


def record_all(session: Session, outbox: Events, templates: Templates, quiet: domain.QuietHours,
               events: Sequence[Event], now: datetime) -> list[Delivery]:
    """`record` for a batch of events, in their order: one query for the patrons' contacts and one multi-row INSERT
    for the deliveries, whatever the batch's size, rather than both per event."""
    learn_all(session, events)
    told = [e for e in events if domain.should_announce(e.type, e.data) and e.data.get("patron")]
    if not told:
        return []
    patrons = {e.data["patron"] for e in told}
    contacts = {row.card: row for row in session.execute(select(CONTACTS).where(CONTACTS.c.card.in_(patrons)))}
    created, rows = [], []
    for event in told:
        delivery = _delivery_of(session, outbox, templates, quiet, event, contacts.get(event.data["patron"]), now)
        if isinstance(delivery, Delivery):
            created.append(delivery)
        else:
            rows.extend(delivery)
    if rows:
        session.execute(insert(DELIVERIES), rows)  # Core, multi-row: the ORM unit of work costs more than the INSERT
        created.extend(Delivery(**row) for row in rows)
    return created


def _delivery_of(session: Session, outbox: Events, templates: Templates, quiet: domain.QuietHours, event: Event,
                 record_: Any, now: datetime) -> Delivery | list[dict[str, Any]]:
    """The rows to insert for one event (one per channel), or the failure recorded at once (no contact)."""
    patron = event.data["patron"]
    base = {"event_id": event.id, "event_type": event.type, "announced_at": event.occurred_at, "patron": patron,
            "reservation_id": event.data.get("reservation_id"), "barcode": event.data.get("barcode"),
            "subject_key": domain.subject_of(event.type, event.data), "amends": domain.amends(event.type, event.data)}
    if record_ is None or not domain.channels_for(contact_of(record_)):
        delivery = Delivery(id=str(uuid.uuid4()), channel="none", status="failed", attempts=0,
                            last_error=domain.unreachable_reason(contact_of(record_) if record_ else None), **base)
        session.add(delivery)
        with caused_by(event):  # in a batch too, the failure is the consequence of its own event
            outbox.publish(session, "notification_failed", outcome(delivery, "no_contact"))
        return delivery
    contact = contact_of(record_)
    known = facts(event.type, event.data)
    suppressed = event.type == "loan_overdue" and reminders_suspended(session, now)
    rows = []
    for channel in domain.channels_for(contact):
        subject, body = templates.render(event.type, channel, contact.language, known)
        due = quiet.next_allowed(now) if channel == "sms" else now
        rows.append(dict(id=str(uuid.uuid4()), channel=channel, recipient=contact.email if channel == "email"
                         else contact.phone, subject=subject, body=body, attempts=0, next_attempt_at=due,
                         held_for_quiet_hours=due > now, status="suppressed" if suppressed else "pending",
                         created_at=now, **base))
    return rows


def claim_due(session: Session, now: datetime, limit: int = 200) -> list[Any]:
    """Due deliveries, claimed with SKIP LOCKED and leased, so two replicas never send the same one. One statement
    (UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING), not one UPDATE per claimed row. Rows with
    the columns of `Delivery`, read-only (Core: an ORM object per claimed row cost more than the claim). A delivery
    waits while an earlier one of its patron is unsettled: a patron's messages go out in the order of their events
    (a retry or a night's wait is not overtaken)."""
    earlier = aliased(Delivery)
    behind = (select(earlier.id).where(earlier.patron == Delivery.patron, earlier.status.in_(UNSETTLED),
                                       earlier.announced_at < Delivery.announced_at).exists())
    due = (select(Delivery.id).where(Delivery.status.in_(UNSETTLED), Delivery.next_attempt_at <= now, ~behind)
           .order_by(Delivery.next_attempt_at).limit(limit).with_for_update(skip_locked=True))
    claimed = session.execute(
        update(DELIVERIES).where(DELIVERIES.c.id.in_(due))
        .values(status="sending", next_attempt_at=now + LEASE, attempts=DELIVERIES.c.attempts + 1)
        .returning(*DELIVERIES.c)).all()
    return sorted(claimed, key=lambda d: d.announced_at)


def fail_unsettled(session: Session, outbox: Events, now: datetime, max_attempts: int) -> list[Any]:
    """A delivery whose last allowed attempt was claimed and never settled (its process died, its lease ran out)
    fails, rather than being claimed again every lease for ever."""
    stale = (select(Delivery.id).where(Delivery.status == "sending", Delivery.next_attempt_at <= now,
                                       Delivery.attempts >= max_attempts).with_for_update(skip_locked=True))
    failed = session.execute(
        update(DELIVERIES).where(DELIVERIES.c.id.in_(stale))
        .values(status="failed", last_error="the last attempt never settled (its lease ran out)")
        .returning(*DELIVERIES.c)).all()
    for delivery in failed:
        outbox.publish(session, "notification_failed", outcome(delivery, "exhausted"))
    return list(failed)


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt: sent (no `error`, no `drop_as`), to retry or failed (`error`, `permanent`), or
    not sent at all (`drop_as`: obsolete). `reason` names a failure other than "permanent" or "exhausted"."""

    delivery_id: str
    error: str | None = None
    permanent: bool = False
    drop_as: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery as the attempt needs it, outside any transaction; `verdict`: decided without sending."""

    id: str
    channel: str
    recipient: str | None
    subject: str | None
    body: str | None
    verdict: Attempt | None = None


def crashed(exc: BaseException) -> str:
    """The log's note for an attempt that raised: the exception's kind only (its text may quote an address)."""
    return f"the attempt crashed ({type(exc).__name__})"


def claim_round(session: Session, outbox: Events, now: datetime, limit: int, max_attempts: int) -> list[Outgoing]:
    """What this round sends: the due deliveries claimed, each judged on its own (erased? still true? superseded?
    news?); a judgement that raises counts as a crashed attempt of that delivery alone."""
    fail_unsettled(session, outbox, now, max_attempts)
    due = claim_due(session, now, limit)
    if not due:
        return []
    waited = [d for d in due if d.attempts > 1 or d.held_for_quiet_hours]  # what goes at once still holds
    states = _by_key(session, ReservationState.reservation_id, ReservationState.status,
                     {d.reservation_id for d in waited if d.reservation_id})
    returns = _by_key(session, CopyReturn.barcode, CopyReturn.returned_at, {d.barcode for d in waited if d.barcode})
    subjects = same_subject(session, {(d.patron, d.subject_key) for d in due if d.subject_key})
    waited_ids = {d.id for d in waited}
    work = []
    for d in due:
        try:
            verdict = judge(d, d.id in waited_ids, states, returns, subjects)
        except Exception as exc:  # one delivery's odd data must not stop the round of the others
            log.warning("judging delivery %s crashed: %s", d.id, type(exc).__name__)
            verdict = Attempt(d.id, error=crashed(exc))
        work.append(Outgoing(d.id, d.channel, d.recipient, d.subject, d.body, verdict))
    return work


def _by_key(session: Session, key: Any, value: Any, keys: set[str]) -> dict[str, Any]:
    return dict(session.execute(select(key, value).where(key.in_(keys))).all()) if keys else {}


Subjects = Mapping[tuple[str, str], list[tuple[str, datetime, str]]]


def same_subject(session: Session, wanted: set[tuple[str, str]]) -> Subjects:
    """(id, announced_at, status) of every delivery of each (patron, subject), in one query."""
    found: dict[tuple[str, str], list[tuple[str, datetime, str]]] = {key: [] for key in wanted}
    if not wanted:
        return found
    rows = session.execute(select(Delivery.id, Delivery.patron, Delivery.subject_key, Delivery.announced_at,
                                  Delivery.status).where(Delivery.subject_key.in_({s for _, s in wanted}))).all()
    for id_, patron, subject, announced_at, status in rows:
        if (patron, subject) in found:
            found[(patron, subject)].append((id_, announced_at, status))
    return found


def judge(delivery: Any, waited: bool, states: Mapping[str, str], returns: Mapping[str, datetime],
          subjects: Subjects) -> Attempt | None:
    """None: send it. Blanked by erasure: failed. No longer true, superseded, or no news: obsolete."""
    if delivery.recipient is None or delivery.body is None:
        return Attempt(delivery.id, error=domain.ERASED, permanent=True, reason="erased")
    if waited and not domain.still_holds(delivery.event_type, delivery.announced_at,
                                         states.get(delivery.reservation_id or ""),
                                         returns.get(delivery.barcode or "")):
        return Attempt(delivery.id, drop_as="obsolete")
    if delivery.subject_key:
        others = [(at, status) for id_, at, status in subjects.get((delivery.patron, delivery.subject_key), [])
                  if id_ != delivery.id]
        if (domain.superseded(delivery.announced_at, [at for at, _ in others])
                or not domain.is_news(delivery.amends, delivery.announced_at, others)):
            return Attempt(delivery.id, drop_as="obsolete")
    return None


def attempt(channels: Mapping[str, Channel], item: Outgoing) -> Attempt:
    """Send one message; whatever it raises is this delivery's failure alone (a crash is retried like a time-out:
    the attempt cap ends it)."""
    if item.verdict is not None:
        return item.verdict
    try:
        channels[item.channel].send(item.id, item.recipient or "", item.subject, item.body or "")
        return Attempt(item.id)
    except TransientFailure as exc:
        return Attempt(item.id, error=str(exc))
    except PermanentDeliveryFailure as exc:
        return Attempt(item.id, error=str(exc), permanent=True)
    except Exception as exc:
        log.warning("sending delivery %s crashed: %s", item.id, type(exc).__name__)
        return Attempt(item.id, error=crashed(exc))


def outcome(delivery: Any, reason: str | None = None) -> dict[str, Any]:
    return {"delivery_id": delivery.id, "event_id": delivery.event_id, "event_type": delivery.event_type,
            "patron": delivery.patron, "channel": delivery.channel, "attempts": delivery.attempts,
            "reason": reason, "reservation_id": delivery.reservation_id}


def settle(session: Session, outbox: Events, result: Attempt, now: datetime, max_attempts: int = 6,
           retry_base_seconds: float = 30) -> Delivery:
    # populate_existing: the claim is Core and leaves an object of an earlier round of this session as it was then
    delivery = session.get(Delivery, result.delivery_id, with_for_update=True, populate_existing=True)
    if result.drop_as:
        delivery.status, delivery.last_error = result.drop_as, None
    elif result.error is None:
        delivery.status, delivery.sent_at, delivery.last_error = "sent", now, None
        outbox.publish(session, "notification_sent", outcome(delivery))
    elif result.permanent or delivery.attempts >= max_attempts:
        delivery.status, delivery.last_error = "failed", result.error
        reason = result.reason or ("permanent" if result.permanent else "exhausted")
        outbox.publish(session, "notification_failed", outcome(delivery, reason))
    else:
        delivery.status, delivery.last_error = "pending", result.error
        delivery.next_attempt_at = domain.retry_at(delivery.attempts, now, retry_base_seconds)
    return delivery


def mark_sent(session: Session, outbox: Events, delivery_ids: Sequence[str], now: datetime) -> list[Any]:
    """`settle` for a batch of successes: one UPDATE … RETURNING for all of them (rows, as `claim_due`), then their
    `notification_sent`."""
    if not delivery_ids:
        return []
    sent = session.execute(
        update(DELIVERIES).where(DELIVERIES.c.id.in_(delivery_ids)).values(status="sent", sent_at=now, last_error=None)
        .returning(*DELIVERIES.c)).all()
    for delivery in sent:
        outbox.publish(session, "notification_sent", outcome(delivery))
    return list(sent)


def isolated(session: Session, delivery_id: str, step: Callable[[], Any],
             settled: list[Any] | None = None) -> bool:
    """Run `step` in a savepoint: if it raises, only its own changes go, the round's other settlements stay. The
    delivery stays `sending` until its lease runs out, then is tried again (or failed at the attempt cap).
    What the step settled (a delivery, or a list of them) joins `settled` once the savepoint is released."""
    try:
        with session.begin_nested():
            done = step()
        if settled is not None:
            settled.extend(done if isinstance(done, list) else [done])
        return True
    except Exception as exc:
        log.warning("settling delivery %s failed: %s; its lease will bring it back", delivery_id, type(exc).__name__)
        return False


def settle_all(session: Session, outbox: Events, results: Sequence[Attempt], now: datetime, max_attempts: int = 6,
               retry_base_seconds: float = 30) -> list[Any]:
    """The outcome of a batch of attempts: the successes in bulk (one by one if the bulk fails), the rest (dropped,
    failed, to retry: few) one by one, each in its own savepoint. Returns the deliveries settled (their status
    says how: sent, failed, obsolete, or pending for a retry)."""
    settled: list[Any] = []
    sent = [r for r in results if r.error is None and not r.drop_as]
    if not isolated(session, "(a batch)", lambda: mark_sent(session, outbox, [r.delivery_id for r in sent], now),
                    settled):
        for result in sent:
            isolated(session, result.delivery_id, lambda r=result: settle(session, outbox, r, now), settled)
    for result in results:
        if result.error is not None or result.drop_as:
            isolated(session, result.delivery_id,
                     lambda r=result: settle(session, outbox, r, now, max_attempts, retry_base_seconds), settled)
    return settled


def resend(session: Session, delivery: Delivery, now: datetime) -> None:
    """Staff send a failed or obsolete message again, to the patron's current address for its channel; refused
    (`Conflict`) when `domain.resend_refusal` says why not."""
    record_ = session.get(ContactRecord, delivery.patron)
    address = domain.address_for(contact_of(record_) if record_ else None, delivery.channel)
    later = same_subject(session, {(delivery.patron, delivery.subject_key)}) if delivery.subject_key else {}
    refusal = domain.resend_refusal(
        delivery.status, delivery.channel, delivery.body is None, address,
        domain.superseded(delivery.announced_at, [at for _, at, _ in later.get((delivery.patron,
                                                                                  delivery.subject_key), [])]))
    if refusal:
        raise Conflict(refusal, status=delivery.status)
    delivery.status, delivery.attempts, delivery.next_attempt_at, delivery.last_error = "pending", 0, now, None
    delivery.recipient = address


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

