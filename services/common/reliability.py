"""Outbox and inbox tables every service declares on its own metadata, and the two rules that use them.

Outbox: the event row is written in the same transaction as the state change it announces, so a crash
between commit and publish loses nothing (the relay publishes it later).
Inbox: the id of each event a handler has processed is written in the transaction of its effect, under a
primary key, so a second delivery finds the row and has no second effect.
"""

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

from sqlalchemy import JSON, CursorResult, Integer, String, Table, insert
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from services.common.clock import now
from services.common.database import insert_new
from services.common.envelope import Event
from services.common.types import UtcDateTime


class _Mapped:
    """What declarative gives each service's table class, said to the type checker (the mixins are not mapped)."""

    if TYPE_CHECKING:
        __table__: ClassVar[Table]

        def __init__(self, **columns: Any) -> None: ...


class OutboxMixin(_Mapped):
    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    exchange: Mapped[str] = mapped_column(String(100))
    routing_key: Mapped[str] = mapped_column(String(100))
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)


class InboxMixin(_Mapped):
    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


OUTBOX_ROWS_KEY = "drive.outbox_rows"  # in a session's info: the events of its transaction, written at commit


def record_event(session: Session, outbox_model: type[OutboxMixin], event: Event) -> None:
    """Add the event to the outbox in the caller's transaction; the relay publishes it after commit.

    The rows wait in the session and go in as one multi-row INSERT just before COMMIT (or a savepoint's
    RELEASE), still inside the transaction, all or nothing with the state change: a batch of N events costs one
    round trip, not N, and none costs the ORM's unit of work. A savepoint rolled back takes its rows with it."""
    pending = session.info.get(OUTBOX_ROWS_KEY)
    if pending is None:
        pending = session.info[OUTBOX_ROWS_KEY] = []
        sa_event.listen(session, "before_commit", _write_outbox)
        sa_event.listen(session, "after_soft_rollback", _forget_outbox)
    pending.append((session.get_nested_transaction(), outbox_model.__table__, {
        "event_id": event.id, "exchange": f"{event.source}.events", "routing_key": event.type,
        "message": event.to_message(), "created_at": now()}))


def _write_outbox(session: Session) -> None:
    pending = session.info.get(OUTBOX_ROWS_KEY)
    if not pending:
        return
    rows, pending[:] = list(pending), []  # taken first: a commit tried again must not write them twice
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for _, table, row in rows:
        by_table.setdefault(table, []).append(row)
    for table, values in by_table.items():
        # One row: a plain INSERT (the many-rows path costs more CPU than it saves for one).
        session.execute(_outbox_insert(table), values[0] if len(values) == 1 else values)


@functools.cache
def _outbox_insert(table: Table) -> Any:
    return insert(table)  # built once: a statement's cache key is computed once per object


def _forget_outbox(session: Session, rolled_back: SessionTransaction) -> None:
    """The rows of the transaction rolled back, and of savepoints inside it, go; those of its parents stay."""
    pending = session.info.get(OUTBOX_ROWS_KEY)
    if not pending:
        return
    if not rolled_back.nested:
        pending.clear()
        return
    pending[:] = [item for item in pending if not _within(item[0], rolled_back)]


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


DUPLICATES_KEY = "drive.duplicates"  # in a worker's session.info: for the metrics (`drive_events_handled_total`)


def note_duplicates(session: Session, count: int = 1) -> None:
    """The inbox found `count` deliveries already processed in this worker's transaction."""
    session.info[DUPLICATES_KEY] = session.info.get(DUPLICATES_KEY, 0) + count


def first_delivery(session: Session, inbox_model: type[InboxMixin], event: Event, consumer: str | None = None) -> bool:
    """Claim the event for this consumer inside the caller's transaction.

    True: first time, go on with the effect. False: already processed (or being processed by a concurrent
    delivery, which then commits first): acknowledge and skip. One statement, no check-then-act race.
    """
    consumer = consumer or session.info.get("consumer", "unknown")
    values = {"consumer": consumer, "event_id": event.id, "processed_at": now()}
    # Parameters apart from the statement: its compiled form is cached, not built again for each event.
    result = session.execute(insert_new(session, inbox_model.__table__), values)
    new = cast(CursorResult[Any], result).rowcount == 1
    if not new:
        note_duplicates(session)
    return new


@contextmanager
def once(session: Session, inbox_model: type[InboxMixin], event: Event) -> Iterator[bool]:
    """The transaction of a handler taking in one event: yields True the first time this consumer sees it (the
    block does the effect), False for a redelivery (the block does nothing); commits when the block ends.

        with once(self.db, Inbox, event) as new:
            if new:
                ...
    """
    with session.begin():
        yield first_delivery(session, inbox_model, event)
