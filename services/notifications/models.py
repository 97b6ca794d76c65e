"""Notifications' tables: patrons' contact details (the only place they live), the delivery log, and what
notifications has learned of reservations and copies (to drop a message that no longer holds)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.clock import now
from services.common.reliability import InboxMixin, OutboxMixin
from services.common.types import UtcDateTime


class Base(DeclarativeBase):
    pass


class Outbox(OutboxMixin, Base):
    pass


class Inbox(InboxMixin, Base):
    pass


class ContactRecord(Base):
    __tablename__ = "contacts"

    card: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    preferred_channel: Mapped[str] = mapped_column(String(10), default="email")
    language: Mapped[str] = mapped_column(String(2), default="fr")
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class Delivery(Base):
    """One message to one patron on one channel for one event: recorded before it is attempted."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("event_id", "patron", "channel", name="uq_delivery_once"),
                      Index("ix_deliveries_due", "status", "next_attempt_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(60))
    announced_at: Mapped[datetime] = mapped_column(UtcDateTime())
    patron: Mapped[str] = mapped_column(String(40), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))  # pending, sending, sent, failed, obsolete, suppressed
    recipient: Mapped[str | None] = mapped_column(String(320), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(300), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    reservation_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    barcode: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # What the message is about when a later event on the same subject supersedes it (domain.subject_of), and
    # whether it takes back an earlier message of that subject (domain.amends).
    subject_key: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    amends: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    held_for_quiet_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ReservationState(Base):
    __tablename__ = "reservation_states"

    reservation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class CopyReturn(Base):
    __tablename__ = "copy_returns"

    barcode: Mapped[str] = mapped_column(String(40), primary_key=True)
    returned_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PolicyState(Base):
    """The latest circulation policy announced by reservations (continuity mode)."""

    __tablename__ = "policy_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
