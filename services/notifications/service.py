"""Notifications: tells patrons what they need to know, by e-mail and SMS. Entrypoints only."""

from functools import partial
from time import monotonic

from eventlet.greenpool import GreenPool

import services.events  # noqa: F401  (the event catalogue this service speaks: fills the registry)
from services.common import (
    PATRON_OR_STAFF,
    STAFF,
    Configured,
    Database,
    DriveService,
    NotFound,
    OutboxRelay,
    TimerWake,
    batch_event_handler,
    event_handler,
    now,
    once,
    once_each,
    route,
    timer,
)
from services.notifications import postroom
from services.notifications.models import Base, ContactRecord, Delivery, Inbox, Outbox
from services.notifications.policy import PostOffice
from services.notifications.schemas import (
    PATH_IDS,
    ContactRecordSchema,
    ContactSchema,
    DeliveryQuerySchema,
    DeliverySchema,
)


class NotificationsService(DriveService):
    name = "notifications"
    path_ids = PATH_IDS

    db = Database(Base, url_key="DB_URL")
    outbox = OutboxRelay("notifications", Outbox)
    office = Configured(PostOffice)
    send_now = TimerWake("send_due")  # what a handler recorded goes out at once, not at the next tick
    notification_channels = ("email", "sms", "none")  # counted from zero ("none": a patron with no address)

    # --- contact details: they live here and nowhere else ----------------------------------------------

    @route("PUT", "/patrons/<card>/contact", roles=PATRON_OR_STAFF, body=ContactSchema,
           response=ContactRecordSchema, summary="Create or replace a patron's contact details")
    def put_contact(self, request, principal, card, body):
        with self.db.begin():
            record = self.db.get(ContactRecord, card) or ContactRecord(card=card)
            for key, value in body.items():
                setattr(record, key, value)
            record.updated_at = now()
            self.db.add(record)
        return record

    @route("GET", "/patrons/<card>/contact", roles=PATRON_OR_STAFF, response=ContactRecordSchema,
           summary="A patron's contact details")
    def get_contact(self, request, principal, card):
        with self.db.begin():
            record = self.db.get(ContactRecord, card)
        if record is None:
            raise NotFound(f"no contact details for card {card}")
        return record

    @route("DELETE", "/patrons/<card>/contact", roles=PATRON_OR_STAFF,
           summary="Erase a patron's contact details and blank them from the delivery log")
    def erase_contact(self, request, principal, card):
        with self.db.begin():
            blanked = postroom.erase(self.db, card)
        return {"card": card, "erased": True, "deliveries_blanked": blanked}

    # --- the delivery log ------------------------------------------------------------------------------

    @route("GET", "/deliveries", roles=STAFF, query=DeliveryQuerySchema, response=DeliverySchema(many=True),
           summary="The delivery log, by patron, event or status")
    def list_deliveries(self, request, principal, query):
        with self.db.begin():
            return postroom.log_of(self.db, query["patron"], query["event"], query["status"], query["limit"])

    @route("POST", "/deliveries/<delivery_id>/resend", roles=STAFF, response=DeliverySchema,
           summary="Send a failed message again, to the patron's current address")
    def resend(self, request, principal, delivery_id):
        with self.db.begin():
            delivery = self.db.get(Delivery, delivery_id, with_for_update=True)
            if delivery is None:
                raise NotFound(f"no delivery {delivery_id}")
            postroom.resend(self.db, delivery, now())
        return delivery

    # --- sending ---------------------------------------------------------------------------------------

    @timer("NOTIFY_SEND_SECONDS")
    def send_due(self):
        """Send what is due, batch after batch, until a batch is not full (all that was due is taken) or
        NOTIFY_SEND_MAX_SECONDS passed (the timer fires again at once), rather than one batch per tick: a burst is
        not paced by the timer. What becomes due meanwhile waits for the next tick, so batches stay large."""
        deadline = monotonic() + self.office.send_max_seconds
        while self._send_batch() >= self.office.batch and monotonic() < deadline:
            pass

    def _send_batch(self) -> int:
        office = self.office
        with self.db.begin():
            work = postroom.claim_round(self.db, self.outbox, now(), office.batch, office.max_attempts)
        if not work:
            return 0
        results = list(GreenPool(office.concurrency).imap(partial(postroom.attempt, office.channels), work))
        with self.db.begin():
            settled = postroom.settle_all(self.db, self.outbox, results, now(), office.max_attempts,
                                          office.retry_base_seconds)
        self.metrics.notifications_settled(settled)
        return len(work)

    # --- what patrons are told of ----------------------------------------------------------------------

    @batch_event_handler("reservations", "reservation_ready")
    def on_reservation_ready(self, batch):
        # The hot path (a morning's allocations): a batch recorded in one transaction (services.common.batching).
        self._record_all(batch)

    @event_handler("reservations", "reservation_cancelled")
    def on_reservation_cancelled(self, event):
        self._record(event)

    @event_handler("reservations", "reservation_expired")
    def on_reservation_expired(self, event):
        self._record(event)

    @event_handler("reservations", "reservation_collected")
    def on_reservation_collected(self, event):
        self._record(event)

    @event_handler("reservations", "loan_overdue")
    def on_loan_overdue(self, event):
        self._record(event)

    @event_handler("reservations", "continuity_policy_changed")
    def on_continuity_policy_changed(self, event):
        self._record(event)

    @event_handler("reservations", "due_dates_shifted")
    def on_due_dates_shifted(self, event):
        self._record(event)

    @event_handler("reservations", "reservation_released_to_allocation")
    def on_reservation_released_to_allocation(self, event):
        """The patron's bibliobus stop opened for the drive (`stop_enabled`): their reservation goes ahead."""
        self._record(event)

    @event_handler("reservations", "selection_requested")
    def on_selection_requested(self, event):
        self._record(event)

    @event_handler("reservations", "selection_prepared")
    def on_selection_prepared(self, event):
        self._record(event)

    @event_handler("reservations", "pickup_slot_booked")
    def on_pickup_slot_booked(self, event):
        self._record(event)

    @event_handler("reservations", "pickup_slot_cancelled")
    def on_pickup_slot_cancelled(self, event):
        """Only the library's doing is announced (`should_announce`): a day closed, or staff cancelled it."""
        self._record(event)

    # patron_arrived is not bound: it is for the counter's staff app, the patron has nothing to be told.

    @event_handler("inventory", "items_unavailable")
    def on_items_unavailable(self, event):
        self._record(event)

    @event_handler("inventory", "item_returned")
    def on_item_returned(self, event):
        self._record(event)

    def _record(self, event):
        with once(self.db, Inbox, event) as new:
            recorded = postroom.record(self.db, self.outbox, self.office.templates, self.office.quiet, event,
                                       now()) if new else []
        self.metrics.notifications_settled(recorded)  # a patron with no contact: failed at once
        self._send_soon(recorded)

    def _record_all(self, batch):
        with once_each(self.db, Inbox, batch) as fresh:
            recorded = postroom.record_all(self.db, self.outbox, self.office.templates, self.office.quiet, fresh,
                                           now())
        self.metrics.notifications_settled(recorded)
        self._send_soon(recorded)

    def _send_soon(self, recorded):
        """Committed: the send round starts now if something is due (a round already going takes it, or the next)."""
        if self.office.send_on_record and any(d.status == "pending" and not d.held_for_quiet_hours for d in recorded):
            self.send_now()
