"""Reservations' tables: pickup points, reservations and their lines, loans, and a replica of the catalogue
(kept from inventory's `title_catalogued` events, so placing a reservation needs no call to inventory)."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.clock import now
from services.common.reliability import InboxMixin, OutboxMixin
from services.common.types import UtcDateTime


class Base(DeclarativeBase):
    pass


class Outbox(OutboxMixin, Base):
    pass


class Inbox(InboxMixin, Base):
    pass


class PickupPoint(Base):
    __tablename__ = "pickup_points"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    site: Mapped[str] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bibliobus stops only, kept from bibliobus's events: open for drive pickup or not, and the tour.
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    district: Mapped[str | None] = mapped_column(String(120), nullable=True)
    visits: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(60), nullable=True)
    capacity_per_visit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The drive's calendar (counters and libraries): {"tuesday": ["10:00-12:30", …]}; None = the default hours.
    opening_hours: Mapped[dict[str, list[str]] | None] = mapped_column(JSON, nullable=True)
    slot_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    slot_capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CatalogueTitle(Base):
    __tablename__ = "catalogue_titles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    author: Mapped[str] = mapped_column(String(300))
    material: Mapped[str] = mapped_column(String(20))


class Reservation(Base):
    __tablename__ = "reservations"
    # The last two serve the figures (GET /stats), read by day.
    __table_args__ = (Index("ix_reservations_status_deadline", "status", "pickup_deadline"),
                      Index("ix_reservations_placed_at", "placed_at"), Index("ix_reservations_closed_at", "closed_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    patron: Mapped[str] = mapped_column(String(40), index=True)
    pickup_point_id: Mapped[str] = mapped_column(ForeignKey("pickup_points.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20))
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    ready_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    pickup_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # At a bibliobus stop: the visit whose vehicle carries it (set when it is made ready).
    visit_arrives_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    visit_departs_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # The counter's day: where it waits, who prepares it, when the patron said "I'm here".
    hold_shelf: Mapped[str | None] = mapped_column(String(40), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    arrived_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    selection_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)

    lines: Mapped[list["Line"]] = relationship(order_by="Line.position", lazy="selectin")
    pickup_point: Mapped[PickupPoint] = relationship(lazy="joined", innerjoin=True)
    appointment: Mapped["Appointment | None"] = relationship(
        primaryjoin="and_(Appointment.reservation_id == Reservation.id, Appointment.status == 'booked')",
        viewonly=True, uselist=False, lazy="select")


class Line(Base):
    __tablename__ = "reservation_lines"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reservation_id: Mapped[str] = mapped_column(ForeignKey("reservations.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    title_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(500))
    material: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    barcode: Mapped[str | None] = mapped_column(String(40), nullable=True)
    site: Mapped[str | None] = mapped_column(String(40), nullable=True)
    shelf_mark: Mapped[str | None] = mapped_column(String(80), nullable=True)
    needs_transfer: Mapped[bool] = mapped_column(Boolean, default=False)
    waitlist_position: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Loan(Base):
    __tablename__ = "loans"
    __table_args__ = (Index("ix_loans_open_due", "returned_at", "due_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    patron: Mapped[str] = mapped_column(String(40), index=True)
    reservation_id: Mapped[str] = mapped_column(ForeignKey("reservations.id"))
    line_id: Mapped[str] = mapped_column(String(36), unique=True)
    title_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(500))
    barcode: Mapped[str] = mapped_column(String(40), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    reminder_step: Mapped[int] = mapped_column(Integer, default=0)


class SuspensionRecord(Base):
    """A period in which overdue reminders and fines are suspended (continuity mode, as during lockdown)."""

    __tablename__ = "suspensions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    resumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class DueDateShift(Base):
    """Staff moved due dates (and pickup deadlines) off a closure; kept so that it can be undone."""

    __tablename__ = "due_date_shifts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    closed_from: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_until: Mapped[datetime] = mapped_column(UtcDateTime())
    rule: Mapped[str] = mapped_column(String(10))
    fixed_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    opening_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    undone_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ShiftedItem(Base):
    __tablename__ = "shifted_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shift_id: Mapped[str] = mapped_column(ForeignKey("due_date_shifts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # loan or reservation
    item_id: Mapped[str] = mapped_column(String(36))
    patron: Mapped[str] = mapped_column(String(40))
    previous: Mapped[datetime] = mapped_column(UtcDateTime())
    new: Mapped[datetime] = mapped_column(UtcDateTime())


class ClosedDay(Base):
    """A day the drive is closed beyond its weekly hours and public holidays (set by staff, with a reason).
    `pickup_point_id` "*" closes every pickup point that day."""

    __tablename__ = "closed_days"
    __table_args__ = (UniqueConstraint("pickup_point_id", "day", name="uq_closed_days_point_day"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pickup_point_id: Mapped[str] = mapped_column(String(60))
    day: Mapped[date] = mapped_column(Date, index=True)
    reason: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)


class PickupSlot(Base):
    """A slot that has been booked at least once: its capacity and how many places are taken. Booking is one
    conditional update (`booked < capacity`), so no slot is overbooked, whatever the number of replicas."""

    __tablename__ = "pickup_slots"
    __table_args__ = (UniqueConstraint("pickup_point_id", "starts_at", name="uq_pickup_slots_point_start"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pickup_point_id: Mapped[str] = mapped_column(ForeignKey("pickup_points.id"))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)


class Appointment(Base):
    """A reservation's booking of a slot; kept once cancelled or moved, for the figures."""

    __tablename__ = "appointments"
    __table_args__ = (Index("ix_appointments_point_start", "pickup_point_id", "starts_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reservation_id: Mapped[str] = mapped_column(ForeignKey("reservations.id"), index=True)
    slot_id: Mapped[str] = mapped_column(ForeignKey("pickup_slots.id"))
    patron: Mapped[str] = mapped_column(String(40), index=True)
    pickup_point_id: Mapped[str] = mapped_column(String(60))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20), default="booked")  # booked, cancelled, moved
    booked_by: Mapped[str] = mapped_column(String(20))
    booked_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Selection(Base):
    """A patron's tastes, for staff to choose titles from; once prepared it is an ordinary reservation."""

    __tablename__ = "selections"
    __table_args__ = (Index("ix_selections_point_status", "pickup_point_id", "status", "requested_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    patron: Mapped[str] = mapped_column(String(40), index=True)
    pickup_point_id: Mapped[str] = mapped_column(ForeignKey("pickup_points.id"))
    channel: Mapped[str] = mapped_column(String(20))
    tastes: Mapped[str] = mapped_column(String(1000))
    audience: Mapped[str] = mapped_column(String(10))
    age_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    age_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kinds: Mapped[list[str]] = mapped_column(JSON)
    documents: Mapped[int] = mapped_column(Integer)
    # requested, then prepared, nothing_available or cancelled
    status: Mapped[str] = mapped_column(String(20), default="requested")
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    prepared_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    prepared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    note: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    reservation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)

    pickup_point: Mapped[PickupPoint] = relationship(lazy="joined", innerjoin=True)
