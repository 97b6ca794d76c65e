"""Outbox and inbox tables every service declares on its own metadata, and the two rules that use them.

Outbox: the event row is written in the same transaction as the state change it announces, so a crash
between commit and publish loses nothing (the relay publishes it later).
Inbox: the id of each event a handler has processed is written in the transaction of its effect, under a
primary key, so a second delivery finds the row and has no second effect.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.common.envelope import Event
from services.common.types import UtcDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxMixin:
    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    exchange: Mapped[str] = mapped_column(String(100))
    routing_key: Mapped[str] = mapped_column(String(100))
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)


class InboxMixin:
    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


def record_event(session: Session, outbox_model: type[OutboxMixin], event: Event) -> None:
    """Add the event to the outbox in the caller's transaction; the relay publishes it after commit."""
    session.add(outbox_model(event_id=event.id, exchange=f"{event.source}.events",
                             routing_key=event.type, message=event.to_message()))


def first_delivery(session: Session, inbox_model: type[InboxMixin], event: Event, consumer: str | None = None) -> bool:
    """Claim the event for this consumer inside the caller's transaction.

    True: first time, go on with the effect. False: already processed (or being processed by a concurrent
    delivery, which then commits first): acknowledge and skip. One statement, no check-then-act race.
    """
    consumer = consumer or session.info.get("consumer", "unknown")
    values = {"consumer": consumer, "event_id": event.id, "processed_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = pg_insert(inbox_model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite_insert(inbox_model).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - other backends are not configured
        stmt = insert(inbox_model).values(**values)
    return session.execute(stmt).rowcount == 1
