"""The event catalogue: every event Drive publishes, with the schema of its `data`.

This is the contract staff apps build on (docs/asyncapi.yaml is generated from it and checked against it):
change it only additively — add a field and bump the version — never rename or remove. Events carry patron
ids (card numbers), never names, e-mails or phone numbers.
"""

from marshmallow import Schema, fields, validate

from services.common.envelope import REGISTRY

MATERIALS = ("book", "comic", "dvd", "cd", "audiobook", "magazine")
POINT_KINDS = ("counter", "library", "bibliobus_stop")


class PickupPointRef(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(POINT_KINDS))
    site = fields.String(required=True)


class LineRef(Schema):
    line_id = fields.String(required=True)
    title_id = fields.String(required=True)
    title = fields.String(load_default=None, allow_none=True)
    material = fields.String(load_default=None, allow_none=True)
    barcode = fields.String(load_default=None, allow_none=True)


def reannounced_field(since: int) -> fields.Boolean:
    """Set on an event that `drive check --fix` published again to repair a consumer: not news for people."""
    return fields.Boolean(load_default=False, metadata={
        "description": f"since version {since}: published again by `drive check --fix` so that a service that "
                       "missed it catches up; it announces nothing new (no message, no demand signal)"})


class ReservationPlaced(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    channel = fields.String(required=True)
    lines = fields.List(fields.Nested(LineRef), required=True, validate=validate.Length(min=1))
    placed_at = fields.AwareDateTime(required=True)
    waiting_for_stop = fields.Boolean(load_default=False, metadata={
        "description": "since version 2: placed at a bibliobus stop that is closed; no copy is set aside until "
                       "the stop opens (reservation_released_to_allocation)"})
    reannounced = reannounced_field(since=3)


class ReservationReleased(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    lines = fields.List(fields.Nested(LineRef), required=True, validate=validate.Length(min=1))


class VisitRef(Schema):
    stop_id = fields.String(required=True)
    arrives_at = fields.AwareDateTime(required=True)
    departs_at = fields.AwareDateTime(required=True)


class ReservationCancelled(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    cancelled_by = fields.String(required=True, validate=validate.OneOf(("patron", "staff")))
    pickup_point = fields.Nested(PickupPointRef, required=True)
    lines = fields.List(fields.Nested(LineRef), required=True)
    reannounced = reannounced_field(since=2)


class ReservationReady(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    pickup_deadline = fields.AwareDateTime(required=True)
    lines = fields.List(fields.Nested(LineRef), required=True)
    visit = fields.Nested(VisitRef, load_default=None, allow_none=True, metadata={
        "description": "since version 2: at a bibliobus stop, the visit that carries it"})


class LoanRef(Schema):
    loan_id = fields.String(required=True)
    line_id = fields.String(required=True)
    title_id = fields.String(required=True)
    title = fields.String(load_default=None, allow_none=True)
    barcode = fields.String(required=True)
    due_at = fields.AwareDateTime(required=True)


class ReservationCollected(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    loans = fields.List(fields.Nested(LoanRef), required=True)


class ReservationExpired(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    pickup_deadline = fields.AwareDateTime(required=True)
    lines = fields.List(fields.Nested(LineRef), required=True)
    reannounced = reannounced_field(since=2)


class LoanOverdue(Schema):
    loan_id = fields.String(required=True)
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    barcode = fields.String(required=True)
    title_id = fields.String(required=True)
    title = fields.String(load_default=None, allow_none=True)
    due_at = fields.AwareDateTime(required=True)
    days_overdue = fields.Integer(required=True)
    reminder_step = fields.Integer(required=True, validate=validate.Range(min=1))


class AllocatedLine(Schema):
    line_id = fields.String(required=True)
    title_id = fields.String(required=True)
    barcode = fields.String(required=True)
    site = fields.String(required=True)
    shelf_mark = fields.String(required=True)
    needs_transfer = fields.Boolean(required=True)


class ItemsAllocated(Schema):
    reservation_id = fields.String(required=True)
    lines = fields.List(fields.Nested(AllocatedLine), required=True, validate=validate.Length(min=1))
    reason = fields.String(required=True, validate=validate.OneOf(("placement", "waitlist")))


class WaitingLine(Schema):
    line_id = fields.String(required=True)
    title_id = fields.String(required=True)
    waitlist_position = fields.Integer(required=True)
    title = fields.String(load_default=None, allow_none=True, metadata={"description": "since version 2"})


class ItemsUnavailable(Schema):
    reservation_id = fields.String(required=True)
    lines = fields.List(fields.Nested(WaitingLine), required=True, validate=validate.Length(min=1))
    patron = fields.String(load_default=None, allow_none=True, metadata={"description": "since version 2"})


class ItemReturned(Schema):
    barcode = fields.String(required=True)
    title_id = fields.String(required=True)
    reservation_id = fields.String(load_default=None, allow_none=True)
    line_id = fields.String(load_default=None, allow_none=True)
    site = fields.String(required=True)
    returned_at = fields.AwareDateTime(required=True)
    quarantine_until = fields.AwareDateTime(required=True)


class CopyAvailable(Schema):
    barcode = fields.String(required=True)
    title_id = fields.String(required=True)
    site = fields.String(required=True)
    shelf_mark = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(("quarantine_over", "released")))


class TitleCatalogued(Schema):
    title_id = fields.String(required=True)
    title = fields.String(required=True)
    author = fields.String(required=True)
    isbn = fields.String(load_default=None, allow_none=True)
    material = fields.String(required=True, validate=validate.OneOf(MATERIALS))


class ContinuityPolicyChanged(Schema):
    suspended = fields.Boolean(required=True, metadata={"description": "reminders and fines suspended (now or "
                                                                       "from starts_at)"})
    suspension_id = fields.String(load_default=None, allow_none=True)
    starts_at = fields.AwareDateTime(load_default=None, allow_none=True)
    ends_at = fields.AwareDateTime(load_default=None, allow_none=True)
    reason = fields.String(load_default=None, allow_none=True)
    grace_days = fields.Integer(required=True, metadata={"description": "days after a suspension before "
                                                                          "reminders and fines resume"})
    changed_by = fields.String(required=True, metadata={"description": "the staff member's token subject"})


class ShiftedLoan(Schema):
    loan_id = fields.String(required=True)
    title = fields.String(load_default=None, allow_none=True)
    previous_due_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)


class ShiftedReservation(Schema):
    reservation_id = fields.String(required=True)
    previous_pickup_deadline = fields.AwareDateTime(required=True)
    pickup_deadline = fields.AwareDateTime(required=True)


class DueDatesShifted(Schema):
    shift_id = fields.String(required=True)
    patron = fields.String(required=True)
    undone = fields.Boolean(required=True, metadata={"description": "true when staff undid the shift"})
    loans = fields.List(fields.Nested(ShiftedLoan), required=True)
    reservations = fields.List(fields.Nested(ShiftedReservation), required=True)


AUDIENCES = ("adult", "youth")


class SelectionRequested(Schema):
    selection_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    channel = fields.String(required=True, validate=validate.OneOf(("web", "phone", "counter")))
    audience = fields.String(required=True, validate=validate.OneOf(AUDIENCES))
    age_min = fields.Integer(load_default=None, allow_none=True)
    age_max = fields.Integer(load_default=None, allow_none=True)
    kinds = fields.List(fields.String(validate=validate.OneOf(MATERIALS)), required=True)
    documents = fields.Integer(required=True, validate=validate.Range(min=1))
    requested_at = fields.AwareDateTime(required=True)


class SelectionPrepared(Schema):
    selection_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(("prepared", "nothing_available")), metadata={
        "description": "prepared: the chosen titles became reservation `reservation_id`, allocated as usual; "
                       "nothing_available: staff found nothing fitting (their note is read over HTTP)"})
    reservation_id = fields.String(load_default=None, allow_none=True)
    documents = fields.Integer(required=True, validate=validate.Range(min=0))
    requested_at = fields.AwareDateTime(required=True)
    prepared_at = fields.AwareDateTime(required=True)


class SelectionCancelled(Schema):
    selection_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    cancelled_by = fields.String(required=True, validate=validate.OneOf(("patron", "staff")))


class SlotBooked(Schema):
    appointment_id = fields.String(required=True)
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)
    booked_by = fields.String(required=True, validate=validate.OneOf(("patron", "staff")))
    moved_from = fields.AwareDateTime(load_default=None, allow_none=True,
                                      metadata={"description": "a moved appointment: the slot it left"})


class SlotCancelled(Schema):
    appointment_id = fields.String(required=True)
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)
    cancelled_by = fields.String(required=True, validate=validate.OneOf(("patron", "staff", "system")))
    reason = fields.String(required=True,
                           validate=validate.OneOf(("cancelled", "moved", "reservation_closed", "drive_closed")),
                           metadata={"description": "drive_closed: staff closed the day; book another slot"})


class PatronArrived(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    arrived_at = fields.AwareDateTime(required=True)
    ready = fields.Boolean(required=True, metadata={"description": "false: the patron came before the "
                                                                   "reservation was ready (the sheet flags it)"})
    hold_shelf = fields.String(load_default=None, allow_none=True)
    slot_starts_at = fields.AwareDateTime(load_default=None, allow_none=True)
    signalled_by = fields.String(required=True, validate=validate.OneOf(("patron", "staff")))


class ReservationClaim(Schema):
    reservation_id = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    claimed_by = fields.String(required=True, metadata={"description": "the member of staff who took it (claimed) "
                                                                       "or had it (released)"})


for _type, _schema, _summary, *_version in [
    ("reservation_placed", ReservationPlaced, "A patron (or staff for them) reserved titles at a pickup point.", 4),
    ("reservation_cancelled", ReservationCancelled, "The patron or staff cancelled before collection.", 3),
    ("reservation_ready", ReservationReady, "Prepared and waiting on the hold shelf until the deadline.", 3),
    ("reservation_collected", ReservationCollected, "Handed over: loans start.", 2),
    ("reservation_expired", ReservationExpired, "Not collected by its deadline: copies go back.", 3),
    ("loan_overdue", LoanOverdue, "A loan passed its due date (once per reminder step).", 2),
    ("continuity_policy_changed", ContinuityPolicyChanged, "Reminders and fines suspended or resumed.", 2),
    ("due_dates_shifted", DueDatesShifted,
     "Staff moved a patron's due dates (and pickup deadlines) off a closure: one event per patron.", 2),
    ("reservation_released_to_allocation", ReservationReleased,
     "A reservation that waited for its bibliobus stop goes on to allocation: the stop opened.", 2),
    ("selection_requested", SelectionRequested,
     "A patron (or staff for them) asked for a selection prepared from their tastes. The free-text tastes stay "
     "in the reservations service (GET /selections/{id}): free text may hold personal data.", 2),
    ("selection_prepared", SelectionPrepared,
     "Staff chose the titles of a selection (now an ordinary reservation), or found nothing fitting.", 2),
    ("selection_cancelled", SelectionCancelled,
     "The patron (or staff for them) withdrew a selection not yet prepared: it leaves the staff's queue.", 2),
    ("pickup_slot_booked", SlotBooked, "An appointment at a counter was taken (or moved here).", 2),
    ("pickup_slot_cancelled", SlotCancelled, "An appointment was given back: cancelled, moved, or its "
                                             "reservation closed.", 2),
    ("patron_arrived", PatronArrived, "The patron is outside the counter, waiting for the hand-over.", 2),
    ("reservation_claimed", ReservationClaim, "A member of staff is preparing this reservation (the others "
                                              "leave it to them).", 1),
    ("reservation_released", ReservationClaim, "The member of staff preparing a reservation stopped: another may "
                                               "take it.", 1),
]:
    REGISTRY.register("reservations", _type, _schema, _summary, *_version)

for _type, _schema, _summary, *_version in [
    ("items_allocated", ItemsAllocated, "Copies were set aside for reservation lines.", 2),
    ("items_unavailable", ItemsUnavailable, "No copy free now: the lines wait on the title's waitlist.", 3),
    ("item_returned", ItemReturned, "A copy was checked in and went into quarantine.", 2),
    ("copy_available", CopyAvailable, "A copy is back on the shelf (quarantine over, or released).", 2),
    ("title_catalogued", TitleCatalogued, "A title was added to the catalogue (or its record changed).", 2),
]:
    REGISTRY.register("inventory", _type, _schema, _summary, *_version)


class DeliveryOutcome(Schema):
    delivery_id = fields.String(required=True)
    event_id = fields.String(required=True, metadata={"description": "the event the message announced"})
    event_type = fields.String(required=True)
    patron = fields.String(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(("email", "sms", "none")))
    attempts = fields.Integer(required=True)
    reason = fields.String(load_default=None, allow_none=True,
                           metadata={"description": "why it failed: permanent, exhausted, no_contact, erased"})
    reservation_id = fields.String(load_default=None, allow_none=True)


REGISTRY.register("notifications", "notification_sent", DeliveryOutcome, "A message reached its channel.", 2)
REGISTRY.register("notifications", "notification_failed", DeliveryOutcome,
                  "A message could not be delivered (permanent failure, retries exhausted, or no contact).", 2)


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class TourSlot(Schema):
    weekday = fields.String(required=True, validate=validate.OneOf(WEEKDAYS))
    arrives = fields.String(required=True, validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"),
                            metadata={"description": "local time HH:MM"})
    departs = fields.String(required=True, validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))


class StopRegistered(Schema):
    stop_id = fields.String(required=True)
    name = fields.String(required=True)
    district = fields.String(required=True)
    latitude = fields.Float(required=True)
    longitude = fields.Float(required=True)
    site = fields.String(required=True, metadata={"description": "the site whose copies the vehicle carries"})
    timezone = fields.String(required=True, metadata={"description": "the zone of the visits' local times"})
    visits = fields.List(fields.Nested(TourSlot), required=True)
    capacity_per_visit = fields.Integer(required=True, validate=validate.Range(min=1))
    enabled = fields.Boolean(required=True)
    revision = fields.Integer(required=True, metadata={"description": "grows with every change of the stop"})


class StopSwitched(Schema):
    stop_id = fields.String(required=True)
    revision = fields.Integer(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(("threshold", "manual")))
    demand = fields.Integer(required=True, metadata={"description": "distinct patrons over the window"})
    enable_threshold = fields.Integer(required=True)
    disable_threshold = fields.Integer(required=True)
    decided_by = fields.String(required=True, metadata={"description": "`rule`, or the analyst's subject"})
    note = fields.String(load_default=None, allow_none=True, metadata={"description": "the analyst's reason"})
    decided_at = fields.AwareDateTime(required=True)


for _type, _schema, _summary, *_version in [
    ("stop_registered", StopRegistered, "A bibliobus stop was added or changed (schedule, capacity, state).", 2),
    ("stop_enabled", StopSwitched, "A bibliobus stop opened for mobile drive pickup (demand or an analyst).", 2),
    ("stop_disabled", StopSwitched, "A bibliobus stop closed for mobile drive pickup (demand or an analyst).", 2),
]:
    REGISTRY.register("bibliobus", _type, _schema, _summary, *_version)
