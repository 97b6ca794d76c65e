"""Bibliobus tables: stops and their tour, the network's thresholds, demand signals, the audit of decisions,
and a replica of the reservations made at stops (kept from reservations' events, for manifests)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String
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


class Stop(Base):
    __tablename__ = "stops"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    district: Mapped[str] = mapped_column(String(120))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    capacity_per_visit: Mapped[int] = mapped_column(Integer)
    visits: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    mode: Mapped[str] = mapped_column(String(10), default="auto")
    rounds_below: Mapped[int] = mapped_column(Integer, default=0)
    # The stop's own thresholds; NULL: the network's.
    enable_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    disable_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consecutive_evaluations: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    demand: Mapped[int] = mapped_column(Integer, default=0)
    evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class NetworkSettings(Base):
    """One row (id 1). NULL thresholds: the configured defaults. `last_round_at` is how replicas claim the
    timer's evaluation round: one conditional update, one winner."""

    __tablename__ = "network_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enable_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    disable_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consecutive_evaluations: Mapped[int | None] = mapped_column(Integer, nullable=True)
    window_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_round_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class DemandSignal(Base):
    """A patron asked for a stop: a reservation there, or an interest. Kept, so that what-ifs can replay them.
    A card number only: no personal data."""

    __tablename__ = "demand_signals"
    __table_args__ = (Index("ix_demand_signals_stop_at", "stop_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stop_id: Mapped[str] = mapped_column(String(60))
    patron: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(12))
    reservation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    recorded_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class Decision(Base):
    """The audit log of stops: every opening and closing, every override and change of a stop's own
    thresholds (the network's: `ThresholdChange`)."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stop_id: Mapped[str | None] = mapped_column(String(60), nullable=True, index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    decided_by: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    demand: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enable_threshold: Mapped[int] = mapped_column(Integer)
    disable_threshold: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ThresholdChange(Base):
    """The audit of the network's thresholds and window (`PUT /thresholds`): who, when, from what to what,
    and why. `old_*` NULL: not known (a change recorded before this table kept them)."""

    __tablename__ = "threshold_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    changed_by: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(String(500))
    old_enable_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    old_disable_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    old_consecutive_evaluations: Mapped[int | None] = mapped_column(Integer, nullable=True)
    old_window_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    new_enable_threshold: Mapped[int] = mapped_column(Integer)
    new_disable_threshold: Mapped[int] = mapped_column(Integer)
    new_consecutive_evaluations: Mapped[int] = mapped_column(Integer)
    new_window_days: Mapped[int] = mapped_column(Integer)


class StopReservation(Base):
    __tablename__ = "stop_reservations"
    __table_args__ = (Index("ix_stop_reservations_stop_status", "stop_id", "status"),)

    reservation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stop_id: Mapped[str] = mapped_column(String(60))
    patron: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    visit_arrives_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    visit_departs_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
