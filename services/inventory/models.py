"""Inventory's tables: the catalogue, copies and their status, waitlists, a copy's history."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
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


class Title(Base):
    __tablename__ = "titles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    author: Mapped[str] = mapped_column(String(300))
    isbn: Mapped[str | None] = mapped_column(String(13), unique=True, nullable=True)
    material: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class Copy(Base):
    __tablename__ = "copies"
    __table_args__ = (Index("ix_copies_title_status", "title_id", "status"),
                      Index("ix_copies_status_quarantine", "status", "quarantine_until"))

    barcode: Mapped[str] = mapped_column(String(40), primary_key=True)
    title_id: Mapped[str] = mapped_column(ForeignKey("titles.id"))
    site: Mapped[str] = mapped_column(String(40))
    shelf_mark: Mapped[str] = mapped_column(String(80))
    plastic_cover: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="available")
    reservation_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    line_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    quarantine_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class WaitlistEntry(Base):
    __tablename__ = "waitlist"
    __table_args__ = (Index("ix_waitlist_title_status", "title_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title_id: Mapped[str] = mapped_column(ForeignKey("titles.id"))
    reservation_id: Mapped[str] = mapped_column(String(36), index=True)
    line_id: Mapped[str] = mapped_column(String(36), unique=True)
    pickup_site: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class ClosedReservation(Base):
    """A reservation that reservations closed (cancelled, expired): recorded under its titles' locks, so that no
    copy and no waitlist place is taken for it afterwards, whatever order its events arrive in."""

    __tablename__ = "closed_reservations"

    reservation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    why: Mapped[str] = mapped_column(String(20))
    closed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class CopyHistory(Base):
    __tablename__ = "copy_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    barcode: Mapped[str] = mapped_column(ForeignKey("copies.barcode"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    what: Mapped[str] = mapped_column(String(40))
    reservation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
