"""Reservations: pickup points, reservations and their lines, loans and fines. Entrypoints only."""

from datetime import timedelta

from sqlalchemy import select

import services.events  # noqa: F401  (the event catalogue this service speaks: fills the registry)
from services.common import (
    ANYONE,
    ANYONE_OR_LINK,
    OPS,
    PATRON_OR_STAFF,
    PATRON_STAFF_OR_LINK,
    STAFF,
    TEAM,
    Configured,
    Database,
    DriveService,
    OutboxRelay,
    batch_event_handler,
    event_handler,
    now,
    once,
    once_each,
    route,
    timer,
)
from services.common.group_commit import GroupCommit
from services.reservations import (
    appointments,
    audit,
    circulation,
    claims,
    domain,
    due_date_shifts,
    figures,
    from_bibliobus,
    from_inventory,
    pickup_points,
    selections,
    suspensions,
    views,
)
from services.reservations.models import Base, Inbox, Outbox, PickupPoint, Selection
from services.reservations.policy import Policy
from services.reservations.schemas import (
    PATH_IDS,
    AccountSchema,
    AppointmentSchema,
    AuditLinesSchema,
    AuditQuerySchema,
    BookSlotSchema,
    CalendarSchema,
    CalendarUpdateSchema,
    CloseDaySchema,
    ClosedDaySchema,
    ContinuitySchema,
    DayRangeSchema,
    DaySchema,
    DaySheetSchema,
    LoanSchema,
    NothingAvailableSchema,
    PickupPointSchema,
    PlaceReservationSchema,
    PreparationListSchema,
    PrepareSelectionSchema,
    ReadySchema,
    ReannouncedSchema,
    ReannounceSchema,
    RequestSelectionSchema,
    ReservationSchema,
    SelectionSchema,
    ShiftRequestSchema,
    ShiftSchema,
    SlotSchema,
    StatsSchema,
    SuspendSchema,
    SuspensionSchema,
)


class ReservationsService(DriveService):
    name = "reservations"
    path_ids = PATH_IDS

    db = Database(Base, url_key="DB_URL")
    outbox = OutboxRelay("reservations", Outbox)
    policy = Configured(Policy)
    # Placements that arrive together share one transaction (services.common.group_commit).
    placements = GroupCommit(circulation.place_group)

    @route("GET", "/pickup-points", roles=ANYONE, response=PickupPointSchema(many=True),
           summary="Where patrons can collect: counters, libraries, bibliobus stops")
    def list_pickup_points(self, request, principal):
        with self.db.begin():
            return self.db.scalars(select(PickupPoint).where(PickupPoint.active).order_by(PickupPoint.id)).all()

    @route("POST", "/reservations", roles=PATRON_OR_STAFF, body=PlaceReservationSchema,
           response=ReservationSchema, status=201, summary="Reserve titles for collection at a pickup point")
    def place_reservation(self, request, principal, body):
        channel = domain.channel_for(body["channel"], principal.is_staff)
        reservation = self.placements.submit(circulation.PlacementRequest(
            self.outbox, self.policy, principal, body["patron"], body["pickup_point"], body["titles"], channel))
        return views.reservation_view(reservation)

    @route("GET", "/reservations/<reservation_id>", roles=PATRON_STAFF_OR_LINK, response=ReservationSchema,
           summary="A reservation with its lines and their copies (with its patron link: without the card)")
    def get_reservation(self, request, principal, reservation_id):
        with self.db.begin():
            return views.reservation_view_for(principal, circulation.find(self.db, reservation_id, principal))

    @route("POST", "/reservations/<reservation_id>/ready", roles=STAFF, body=ReadySchema, optional_body=True,
           response=ReservationSchema, summary="Prepared: waiting on the hold shelf until the pickup deadline "
                                               "(the next opening day's closing time after the deadline days)")
    def mark_ready(self, request, principal, reservation_id, body):
        with self.db.begin():
            pickup_points.hold_closed_days(self.db)  # before the reservation's row, as closing a day takes them
            reservation = circulation.find(self.db, reservation_id, principal, lock=True)
            circulation.make_ready(self.db, self.outbox, self.policy, reservation, now(), principal, body["hold_shelf"])
            return views.reservation_view(reservation)

    @route("POST", "/reservations/<reservation_id>/collect", roles=STAFF, response=ReservationSchema,
           summary="Handed over: loans start")
    def collect(self, request, principal, reservation_id):
        with self.db.begin():
            pickup_points.hold_closed_days(self.db)  # the due dates it sets, as for a pickup deadline
            reservation = circulation.find(self.db, reservation_id, principal, lock=True)
            circulation.collect(self.db, self.outbox, self.policy, reservation, now())
            return views.reservation_view(reservation)

    @route("POST", "/reservations/<reservation_id>/cancel", roles=PATRON_OR_STAFF, response=ReservationSchema,
           summary="Cancel before collection: the copies go back")
    def cancel(self, request, principal, reservation_id):
        with self.db.begin():
            reservation = circulation.find(self.db, reservation_id, principal, lock=True)
            circulation.cancel(self.db, self.outbox, reservation, "staff" if principal.is_staff else "patron", now())
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

    @timer("EXPIRY_CHECK_SECONDS")
    def expire_uncollected(self):
        with self.db.begin():
            circulation.expire_due(self.db, self.outbox, self.policy, now())

    @timer("OVERDUE_CHECK_SECONDS")
    def remind_overdue(self):
        with self.db.begin():
            circulation.remind_overdue(self.db, self.outbox, self.policy, now(), suspensions.as_run(self.db))

    # --- the counter's day: calendar, slots and appointments, day sheet, claims, arrivals ------------------

    @route("GET", "/pickup-points/<point_id>/calendar", roles=ANYONE, query=DayRangeSchema, response=CalendarSchema,
           summary="A pickup point's drive hours, slot length and capacity, and which days it opens")
    def get_calendar(self, request, principal, point_id, query):
        with self.db.begin():
            point = pickup_points.pickup_point(self.db, point_id)
            return pickup_points.calendar_view(self.db, point, self.policy, query["first"], query["last"])

    @route("PUT", "/pickup-points/<point_id>/calendar", roles=STAFF, body=CalendarUpdateSchema,
           response=CalendarSchema, summary="Set a pickup point's weekly drive hours, slot length or capacity")
    def set_calendar(self, request, principal, point_id, body):
        with self.db.begin():
            point = pickup_points.pickup_point(self.db, point_id, lock=True)
            pickup_points.set_calendar(self.db, point, body, now())
            today = now().astimezone(self.policy.tz).date()
            return pickup_points.calendar_view(self.db, point, self.policy, today, today + timedelta(days=13))

    @route("GET", "/closed-days", roles=ANYONE, query=DayRangeSchema, response=ClosedDaySchema(many=True),
           summary="Closures set by staff (public holidays are known without them: see a point's calendar)")
    def list_closed_days(self, request, principal, query):
        with self.db.begin():
            return pickup_points.closed_days(self.db, query["first"], query["last"])

    @route("POST", "/closed-days", roles=STAFF, body=CloseDaySchema, response=ClosedDaySchema, status=201,
           summary="Close a pickup point (or * the network) for a day, with a reason: its appointments are given "
                   "back, deadlines and due dates on it move to the next opening day")
    def close_day(self, request, principal, body):
        with self.db.begin():
            closed = pickup_points.close_day(self.db, principal, body["pickup_point"], body["day"], body["reason"],
                                         now().astimezone(self.policy.tz).date())
            # Shown in the answer only (not columns): the appointments of that day given back, and the
            # deadlines and due dates moved off it, just now.
            closed.appointments_cancelled = appointments.drive_closed(self.db, self.outbox, closed.pickup_point_id,
                                                                 closed.day, self.policy, now())
            moved = due_date_shifts.move_off_closed_day(self.db, self.outbox, principal, closed.pickup_point_id,
                                                 closed.day, self.policy, now())
            closed.due_date_shift, closed.dates_moved = moved["due_date_shift"], moved["dates_moved"]
            return closed

    @route("DELETE", "/closed-days/<closed_day_id>", roles=STAFF, response=ClosedDaySchema,
           summary="Open again a day closed by mistake")
    def reopen_day(self, request, principal, closed_day_id):
        with self.db.begin():
            return pickup_points.reopen_day(self.db, closed_day_id)

    @route("GET", "/pickup-points/<point_id>/slots", roles=ANYONE_OR_LINK, query=DayRangeSchema,
           response=SlotSchema(many=True), summary="Coming appointment slots of a pickup point, with free places")
    def list_slots(self, request, principal, point_id, query):
        with self.db.begin():
            point = pickup_points.pickup_point(self.db, point_id)
            return appointments.slots(self.db, point, self.policy, query["first"], query["last"], now())

    @route("PUT", "/reservations/<reservation_id>/appointment", roles=PATRON_STAFF_OR_LINK, body=BookSlotSchema,
           response=AppointmentSchema, summary="Book a slot to collect a ready reservation, or move the booking")
    def book_slot(self, request, principal, reservation_id, body):
        with self.db.begin():
            reservation = circulation.find(self.db, reservation_id, principal, lock=True)
            return appointments.book(self.db, self.outbox, self.policy, principal, reservation, body["starts_at"],
                                     now())

    @route("GET", "/reservations/<reservation_id>/appointment", roles=PATRON_STAFF_OR_LINK,
           response=AppointmentSchema, summary="The slot booked to collect a reservation")
    def get_appointment(self, request, principal, reservation_id):
        with self.db.begin():
            return appointments.appointment_of(self.db, circulation.find(self.db, reservation_id, principal))

    @route("DELETE", "/reservations/<reservation_id>/appointment", roles=PATRON_STAFF_OR_LINK,
           response=AppointmentSchema, summary="Give the slot back (the reservation still waits until its deadline)")
    def cancel_slot(self, request, principal, reservation_id):
        with self.db.begin():
            reservation = circulation.find(self.db, reservation_id, principal, lock=True)
            return appointments.cancel_booking(self.db, self.outbox, principal, reservation, now())

    @route("GET", "/pickup-points/<point_id>/day-sheet", roles=STAFF, query=DaySchema, response=DaySheetSchema,
           summary="The counter's day: per slot, what to hand over and where it waits; walk-ins; who is outside")
    def day_sheet(self, request, principal, point_id, query):
        with self.db.begin():
            point = pickup_points.pickup_point(self.db, point_id)
            return appointments.day_sheet(self.db, point, self.policy, query["day"], now())

    @route("GET", "/stats", roles=TEAM, query=DayRangeSchema, response=StatsSchema,
           summary="The figures per local day, pickup point and channel (placed, selections asked and prepared, "
                   "collections, no-shows, median times) and slot occupancy, for at most 366 days")
    def stats(self, request, principal, query):
        with self.db.begin():
            return figures.report(self.db, self.policy, query["first"], query["last"])

    @route("POST", "/reservations/<reservation_id>/claim", roles=STAFF, response=ReservationSchema,
           summary="I am preparing this one (409 if another member of staff is)")
    def claim_reservation(self, request, principal, reservation_id):
        with self.db.begin():
            return views.reservation_view(circulation.claim(self.db, self.outbox, reservation_id, principal, now()))

    @route("POST", "/reservations/<reservation_id>/release", roles=STAFF, response=ReservationSchema,
           summary="Stop preparing it: another member of staff may take it")
    def release_reservation(self, request, principal, reservation_id):
        with self.db.begin():
            return views.reservation_view(circulation.release(self.db, self.outbox, reservation_id, principal))

    @route("POST", "/reservations/<reservation_id>/arrived", roles=PATRON_STAFF_OR_LINK,
           response=ReservationSchema,
           summary="\"I'm here\": the patron waits outside the counter (patron_arrived tells the staff app)")
    def patron_arrived(self, request, principal, reservation_id):
        with self.db.begin():
            reservation = circulation.find(self.db, reservation_id, principal, lock=True)
            appointments.arrived(self.db, self.outbox, self.policy, principal, reservation, now())
            return views.reservation_view_for(principal, reservation)

    # --- selections: prepared by staff from a patron's tastes --------------------------------------------

    @route("POST", "/selections", roles=PATRON_OR_STAFF, body=RequestSelectionSchema, response=SelectionSchema,
           status=201, summary="Ask for a selection prepared from tastes (staff: on a patron's behalf)")
    def request_selection(self, request, principal, body):
        channel = domain.channel_for(body["channel"], principal.is_staff)
        with self.db.begin():
            selection = selections.request(self.db, self.outbox, self.policy, principal, body, channel, now())
            return selections.selection_view(self.db, selection)

    @route("GET", "/selections/<selection_id>", roles=PATRON_OR_STAFF, response=SelectionSchema,
           summary="A selection: the tastes, the outcome, and what was chosen")
    def get_selection(self, request, principal, selection_id):
        with self.db.begin():
            return selections.selection_view(self.db, selections.find(self.db, selection_id, principal))

    @route("GET", "/patrons/<card>/selections", roles=PATRON_OR_STAFF, response=SelectionSchema(many=True),
           summary="A patron's selections")
    def patron_selections(self, request, principal, card):
        with self.db.begin():
            return [selections.selection_view(self.db, s) for s in selections.patron_selections(self.db, card)]

    @route("GET", "/pickup-points/<point_id>/selections", roles=STAFF, response=SelectionSchema(many=True),
           summary="The selections to prepare for a pickup point, oldest first")
    def selection_queue(self, request, principal, point_id):
        with self.db.begin():
            return [selections.selection_view(self.db, s) for s in selections.queue(self.db, point_id)]

    @route("POST", "/selections/<selection_id>/cancel", roles=PATRON_OR_STAFF, response=SelectionSchema,
           summary="Withdraw a selection not yet prepared")
    def cancel_selection(self, request, principal, selection_id):
        with self.db.begin():
            selection = selections.find(self.db, selection_id, principal, lock=True)
            selections.cancel(self.db, self.outbox, principal, selection)
            return selections.selection_view(self.db, selection)

    @route("POST", "/selections/<selection_id>/claim", roles=STAFF, response=SelectionSchema,
           summary="I am preparing this selection (409 if another member of staff is)")
    def claim_selection(self, request, principal, selection_id):
        with self.db.begin():
            claims.claim(self.db, Selection, selection_id, principal, now(), domain.SELECTION_OPEN)
            return selections.selection_view(self.db, selections.find(self.db, selection_id, principal))

    @route("POST", "/selections/<selection_id>/release", roles=STAFF, response=SelectionSchema,
           summary="Stop preparing this selection")
    def release_selection(self, request, principal, selection_id):
        with self.db.begin():
            claims.release(self.db, Selection, selection_id, principal)
            return selections.selection_view(self.db, selections.find(self.db, selection_id, principal))

    @route("POST", "/selections/<selection_id>/prepare", roles=STAFF, body=PrepareSelectionSchema,
           response=SelectionSchema, summary="The chosen titles become a reservation, allocated as usual")
    def prepare_selection(self, request, principal, selection_id, body):
        with self.db.begin():
            selection = selections.find(self.db, selection_id, principal, lock=True)
            selections.prepare(self.db, self.outbox, self.policy, principal, selection, body["titles"],
                               body["note"], now())
            return selections.selection_view(self.db, selection)

    @route("POST", "/selections/<selection_id>/nothing-available", roles=STAFF, body=NothingAvailableSchema,
           response=SelectionSchema, summary="Nothing fitting is available: say so to the patron with a note")
    def selection_nothing_available(self, request, principal, selection_id, body):
        with self.db.begin():
            selection = selections.find(self.db, selection_id, principal, lock=True)
            selections.nothing_available(self.db, self.outbox, principal, selection, body["note"], now())
            return selections.selection_view(self.db, selection)

    # --- continuity: suspended reminders and fines, due dates moved off a closure ---------------------------

    @route("GET", "/continuity", roles=STAFF, response=ContinuitySchema,
           summary="Whether overdue reminders and fines are suspended, and the suspensions so far")
    def get_continuity(self, request, principal):
        with self.db.begin():
            return suspensions.continuity_view(self.db, now(), self.policy.grace_days)

    @route("POST", "/continuity/suspensions", roles=STAFF, body=SuspendSchema, response=SuspensionSchema,
           status=201, summary="Suspend overdue reminders and fines from a date until a date, with a reason")
    def suspend(self, request, principal, body):
        with self.db.begin():
            return suspensions.suspend(self.db, self.outbox, principal, body["starts_at"], body["ends_at"],
                                    body["reason"], now(), self.policy.grace_days)

    @route("POST", "/continuity/resume", roles=STAFF, response=SuspensionSchema,
           summary="End the current suspension now")
    def resume(self, request, principal):
        with self.db.begin():
            return suspensions.resume(self.db, self.outbox, principal, now(), self.policy.grace_days)

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
            shift = due_date_shifts.apply_shift(self.db, self.outbox, principal, changes, body, now())
        return {"id": shift.id, "preview": False, "changes": changes, "patrons": len({c["patron"] for c in changes})}

    @route("POST", "/due-date-shifts/<shift_id>/undo", roles=STAFF, response=ShiftSchema,
           summary="Put back the dates a shift moved (those not changed since)")
    def undo_shift(self, request, principal, shift_id):
        with self.db.begin():
            changes = due_date_shifts.undo_shift(self.db, self.outbox, shift_id, now())
        return {"id": shift_id, "preview": False, "changes": changes, "patrons": len({c["patron"] for c in changes})}

    # --- the audit of `drive check` ----------------------------------------------------------------------

    @route("GET", "/audit/lines", roles=OPS, query=AuditQuerySchema, response=AuditLinesSchema,
           summary="Open lines that should hold a copy or a waitlist place in inventory; reservations stuck in placed")
    def audit_lines(self, request, principal, query):
        with self.db.begin():
            return audit.open_lines(self.db, now(), query["stuck_after_seconds"])

    @route("POST", "/audit/reannounce", roles=OPS, body=ReannounceSchema, response=ReannouncedSchema(many=True),
           summary="Say again the event that put each reservation where it is (placed, cancelled, expired), marked "
                   "`reannounced`, so that a service that missed it catches up")
    def audit_reannounce(self, request, principal, body):
        with self.db.begin():
            return audit.reannounce(self.db, self.outbox, body["reservation_ids"], body["dry_run"])

    def _shift_changes(self, body):
        return due_date_shifts.preview(self.db, body["closed_from"], body["closed_until"], body["rule"],
                                self.policy, body["fixed_date"], body["opening_days"])

    # The hot path: inventory's answers to placements, many per transaction (services.common.batching).
    @batch_event_handler("inventory", "items_allocated")
    def on_items_allocated(self, batch):
        self._apply_batch(batch, from_inventory.record_allocation)

    @batch_event_handler("inventory", "items_unavailable")
    def on_items_unavailable(self, batch):
        self._apply_batch(batch, from_inventory.record_waiting)

    @event_handler("inventory", "item_returned")
    def on_item_returned(self, event):
        self._apply(event, from_inventory.record_return)

    @event_handler("inventory", "title_catalogued")
    def on_title_catalogued(self, event):
        self._apply(event, from_inventory.record_title)

    @event_handler("bibliobus", "stop_registered")
    def on_stop_registered(self, event):
        self._apply(event, lambda db, data: from_bibliobus.record_stop(db, self.outbox, data))

    @event_handler("bibliobus", "stop_enabled")
    def on_stop_enabled(self, event):
        self._apply(event, lambda db, data: from_bibliobus.record_switch(db, self.outbox, data, enabled=True))

    @event_handler("bibliobus", "stop_disabled")
    def on_stop_disabled(self, event):
        self._apply(event, lambda db, data: from_bibliobus.record_switch(db, self.outbox, data, enabled=False))

    def _apply(self, event, effect):
        with once(self.db, Inbox, event) as new:
            if new:
                effect(self.db, event.data)

    def _apply_batch(self, batch, effect):
        with once_each(self.db, Inbox, batch) as fresh:
            if fresh:
                effect(self.db, [event.data for event in fresh])
