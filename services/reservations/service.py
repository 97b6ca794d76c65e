"""Reservations: pickup points, reservations and their lines, loans and fines. Entrypoints only."""

from datetime import UTC, datetime

from sqlalchemy import select

import services.events  # noqa: F401  (the event catalogue this service speaks: fills the registry)
from services.common.batching import batch_event_handler, first_deliveries
from services.common.database import Database
from services.common.http import route
from services.common.messaging import event_handler
from services.common.relay import OutboxRelay
from services.common.reliability import first_delivery
from services.common.service import DriveService
from services.common.timers import timer
from services.reservations import closures, desk, stops, views
from services.reservations.models import Base, Inbox, Outbox, PickupPoint
from services.reservations.policy import ReservationsPolicy
from services.reservations.schemas import (
    AccountSchema,
    ContinuitySchema,
    LoanSchema,
    PickupPointSchema,
    PlaceReservationSchema,
    PreparationListSchema,
    ReservationSchema,
    ShiftRequestSchema,
    ShiftSchema,
    SuspendSchema,
    SuspensionSchema,
)

ANYONE = ("patron", "staff", "analyst", "ops")
PATRON_OR_STAFF = ("patron", "staff")
STAFF = ("staff",)


def now() -> datetime:
    return datetime.now(UTC)


class ReservationsService(DriveService):
    name = "reservations"

    db = Database(Base, url_key="DB_URL")
    events = OutboxRelay("reservations", Outbox)
    policy = ReservationsPolicy()

    @route("GET", "/pickup-points", roles=ANYONE, response=PickupPointSchema(many=True),
           summary="Where patrons can collect: counters, libraries, bibliobus stops")
    def list_pickup_points(self, request, principal):
        with self.db.begin():
            return self.db.scalars(select(PickupPoint).where(PickupPoint.active).order_by(PickupPoint.id)).all()

    @route("POST", "/reservations", roles=PATRON_OR_STAFF, body=PlaceReservationSchema,
           response=ReservationSchema, status=201, summary="Reserve titles for collection at a pickup point")
    def place_reservation(self, request, principal, body):
        channel = body["channel"] or ("phone" if principal.is_staff else "web")
        if not principal.is_staff:
            channel = "web"
        with self.db.begin():
            reservation = desk.place(self.db, self.events, self.policy, principal, body["patron"],
                                     body["pickup_point"], body["titles"], channel)
            return views.reservation_view(reservation)

    @route("GET", "/reservations/<reservation_id>", roles=PATRON_OR_STAFF, response=ReservationSchema,
           summary="A reservation with its lines and their copies")
    def get_reservation(self, request, principal, reservation_id):
        with self.db.begin():
            return views.reservation_view(desk.find(self.db, reservation_id, principal))

    @route("POST", "/reservations/<reservation_id>/ready", roles=STAFF, response=ReservationSchema,
           summary="Prepared: waiting on the hold shelf until the pickup deadline")
    def mark_ready(self, request, principal, reservation_id):
        with self.db.begin():
            reservation = desk.find(self.db, reservation_id, principal, lock=True)
            desk.make_ready(self.db, self.events, self.policy, reservation, now())
            return views.reservation_view(reservation)

    @route("POST", "/reservations/<reservation_id>/collect", roles=STAFF, response=ReservationSchema,
           summary="Handed over: loans start")
    def collect(self, request, principal, reservation_id):
        with self.db.begin():
            reservation = desk.find(self.db, reservation_id, principal, lock=True)
            desk.collect(self.db, self.events, self.policy, reservation, now())
            return views.reservation_view(reservation)

    @route("POST", "/reservations/<reservation_id>/cancel", roles=PATRON_OR_STAFF, response=ReservationSchema,
           summary="Cancel before collection: the copies go back")
    def cancel(self, request, principal, reservation_id):
        with self.db.begin():
            reservation = desk.find(self.db, reservation_id, principal, lock=True)
            desk.cancel(self.db, self.events, reservation, "staff" if principal.is_staff else "patron", now())
            return views.reservation_view(reservation)

    @route("GET", "/pickup-points/<point_id>/preparation-list", roles=STAFF, response=PreparationListSchema,
           summary="Copies to pull for a pickup point, in the order of a walk through the shelves")
    def preparation_list(self, request, principal, point_id):
        with self.db.begin():
            return views.preparation_list(self.db, point_id)

    @route("GET", "/patrons/<card>/reservations", roles=PATRON_OR_STAFF, response=ReservationSchema(many=True),
           summary="A patron's reservations")
    def patron_reservations(self, request, principal, card):
        with self.db.begin():
            return views.patron_reservations(self.db, card)

    @route("GET", "/patrons/<card>/loans", roles=PATRON_OR_STAFF, response=LoanSchema(many=True),
           summary="A patron's loans, with days overdue and fines")
    def patron_loans(self, request, principal, card):
        with self.db.begin():
            return views.patron_loans(self.db, card, self.policy, now())

    @route("GET", "/patrons/<card>/account", roles=PATRON_OR_STAFF, response=AccountSchema,
           summary="A patron's account: quota left, loans overdue, fines")
    def patron_account(self, request, principal, card):
        with self.db.begin():
            return views.account(self.db, card, self.policy, now())

    @timer("EXPIRY_CHECK_SECONDS", 60)
    def expire_uncollected(self):
        with self.db.begin():
            desk.expire_due(self.db, self.events, now())

    @timer("OVERDUE_CHECK_SECONDS", 300)
    def remind_overdue(self):
        with self.db.begin():
            desk.remind_overdue(self.db, self.events, self.policy, now(), closures.suspensions(self.db))

    # --- continuity: closures, suspended reminders and fines, due dates moved off a closure --------------

    @route("GET", "/continuity", roles=STAFF, response=ContinuitySchema,
           summary="Whether overdue reminders and fines are suspended, and the suspensions so far")
    def get_continuity(self, request, principal):
        with self.db.begin():
            return closures.continuity_view(self.db, now(), self.policy.grace_days)

    @route("POST", "/continuity/suspensions", roles=STAFF, body=SuspendSchema, response=SuspensionSchema,
           status=201, summary="Suspend overdue reminders and fines from a date until a date, with a reason")
    def suspend(self, request, principal, body):
        with self.db.begin():
            return closures.suspend(self.db, self.events, principal, body["starts_at"], body["ends_at"],
                                    body["reason"], now(), self.policy.grace_days)

    @route("POST", "/continuity/resume", roles=STAFF, response=SuspensionSchema,
           summary="End the current suspension now")
    def resume(self, request, principal):
        with self.db.begin():
            return closures.resume(self.db, self.events, principal, now(), self.policy.grace_days)

    @route("POST", "/due-date-shifts/preview", roles=STAFF, body=ShiftRequestSchema, response=ShiftSchema,
           summary="What moving due dates and pickup deadlines off a closure would change (changes nothing)")
    def preview_shift(self, request, principal, body):
        with self.db.begin():
            changes = self._shift_changes(body)
        return {"id": None, "preview": True, "changes": changes, "patrons": len({c["patron"] for c in changes})}

    @route("POST", "/due-date-shifts", roles=STAFF, body=ShiftRequestSchema, response=ShiftSchema, status=201,
           summary="Move due dates and pickup deadlines off a closure; one event per patron")
    def apply_shift(self, request, principal, body):
        with self.db.begin():
            changes = self._shift_changes(body)
            shift = closures.apply_shift(self.db, self.events, principal, changes, body, now())
        return {"id": shift.id, "preview": False, "changes": changes, "patrons": len({c["patron"] for c in changes})}

    @route("POST", "/due-date-shifts/<shift_id>/undo", roles=STAFF, response=ShiftSchema,
           summary="Put back the dates a shift moved (those not changed since)")
    def undo_shift(self, request, principal, shift_id):
        with self.db.begin():
            changes = closures.undo_shift(self.db, self.events, shift_id, now())
        return {"id": shift_id, "preview": False, "changes": changes, "patrons": len({c["patron"] for c in changes})}

    def _shift_changes(self, body):
        return closures.preview(self.db, body["closed_from"], body["closed_until"], body["rule"],
                                self.policy.opening, body["fixed_date"], body["opening_days"])

    # The hot path: inventory's answers to placements, many per transaction (services.common.batching).
    @batch_event_handler("inventory", "items_allocated")
    def on_items_allocated(self, events):
        self._apply_batch(events, desk.record_allocation)

    @batch_event_handler("inventory", "items_unavailable")
    def on_items_unavailable(self, events):
        self._apply_batch(events, desk.record_waiting)

    @event_handler("inventory", "item_returned")
    def on_item_returned(self, event):
        self._apply(event, desk.record_return)

    @event_handler("inventory", "title_catalogued")
    def on_title_catalogued(self, event):
        self._apply(event, desk.record_title)

    @event_handler("bibliobus", "stop_registered")
    def on_stop_registered(self, event):
        self._apply(event, lambda db, data: stops.record_stop(db, self.events, data))

    @event_handler("bibliobus", "stop_enabled")
    def on_stop_enabled(self, event):
        self._apply(event, lambda db, data: stops.record_switch(db, self.events, data, enabled=True))

    @event_handler("bibliobus", "stop_disabled")
    def on_stop_disabled(self, event):
        self._apply(event, lambda db, data: stops.record_switch(db, self.events, data, enabled=False))

    def _apply(self, event, effect):
        with self.db.begin():
            if first_delivery(self.db, Inbox, event):
                effect(self.db, event.data)

    def _apply_batch(self, events, effect):
        with self.db.begin():
            fresh = first_deliveries(self.db, Inbox, events)
            if fresh:
                effect(self.db, [event.data for event in fresh])
