"""Reservations' HTTP bodies and answers."""

from datetime import UTC, datetime, timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.common.fields import Card, Day, Flag, Id, Int, Moment
from services.events import AUDIENCES, MATERIALS, WEEKDAYS

CHANNELS = ("web", "phone", "counter")
# The routes' path ids, as long as their columns at most.
PATH_IDS = {"card": Card(), "point_id": Id(60), "reservation_id": Id(36), "selection_id": Id(36),
            "closed_day_id": Id(36), "shift_id": Id(36)}


class TourSlotSchema(Schema):
    weekday = fields.String()
    arrives = fields.String()
    departs = fields.String()


class PickupPointSchema(Schema):
    id = fields.String()
    name = fields.String()
    kind = fields.String()
    site = fields.String()
    enabled = fields.Boolean(metadata={"description": "a bibliobus stop: open for drive pickup (else reservations "
                                                      "there wait for it to open)"})
    district = fields.String(allow_none=True)
    visits = fields.List(fields.Nested(TourSlotSchema), allow_none=True)
    capacity_per_visit = fields.Integer(allow_none=True)


class VisitSchema(Schema):
    arrives_at = fields.DateTime()
    departs_at = fields.DateTime()


class PlaceReservationSchema(Schema):
    patron = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9-]{1,40}$"),
                           metadata={"description": "the patron's card number"})
    pickup_point = fields.String(required=True, validate=validate.Length(min=1, max=60))
    titles = fields.List(fields.String(validate=validate.Length(min=1, max=36)), required=True,
                         validate=validate.Length(min=1, max=50))
    channel = fields.String(load_default=None, validate=validate.OneOf(CHANNELS),
                            metadata={"description": "web for a patron; staff default to phone"})


class LineSchema(Schema):
    id = fields.String()
    title_id = fields.String()
    title = fields.String()
    material = fields.String()
    status = fields.String()
    barcode = fields.String(allow_none=True)
    site = fields.String(allow_none=True)
    shelf_mark = fields.String(allow_none=True)
    needs_transfer = fields.Boolean()
    waitlist_position = fields.Integer(allow_none=True)


class ReservationSchema(Schema):
    id = fields.String()
    patron = fields.String()
    status = fields.String()
    channel = fields.String()
    pickup_point = fields.Nested(PickupPointSchema)
    placed_at = fields.DateTime()
    ready_at = fields.DateTime(allow_none=True)
    pickup_deadline = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    closed_by = fields.String(allow_none=True)
    lines = fields.List(fields.Nested(LineSchema))
    visit = fields.Nested(VisitSchema, allow_none=True, metadata={"description": "at a bibliobus stop, once ready"})
    hold_shelf = fields.String(allow_none=True, metadata={"description": "where it waits once ready"})
    claimed_by = fields.String(allow_none=True, metadata={"description": "the member of staff preparing it"})
    arrived_at = fields.DateTime(allow_none=True, metadata={"description": "when the patron said \"I'm here\""})
    handed_over_after_seconds = fields.Integer(allow_none=True,
                                               metadata={"description": "from arrival to hand-over"})
    selection_id = fields.String(allow_none=True, metadata={"description": "prepared by staff from a selection"})
    appointment = fields.Nested(lambda: AppointmentSchema(), allow_none=True)


class PreparationItemSchema(Schema):
    reservation_id = fields.String()
    line_id = fields.String()
    patron = fields.String()
    title_id = fields.String()
    title = fields.String()
    barcode = fields.String()
    site = fields.String()
    shelf_mark = fields.String()
    needs_transfer = fields.Boolean()
    reservation_complete = fields.Boolean()
    claimed_by = fields.String(allow_none=True)


class PreparationListSchema(Schema):
    pickup_point = fields.Nested(PickupPointSchema)
    items = fields.List(fields.Nested(PreparationItemSchema))


class LoanSchema(Schema):
    id = fields.String()
    reservation_id = fields.String()
    title_id = fields.String()
    title = fields.String()
    barcode = fields.String()
    started_at = fields.DateTime()
    due_at = fields.DateTime()
    returned_at = fields.DateTime(allow_none=True)
    days_overdue = fields.Integer()
    fine_cents = fields.Integer()
    reminders_sent = fields.Integer()


class FineSchema(Schema):
    loan_id = fields.String()
    title = fields.String()
    days_overdue = fields.Integer()
    fine_cents = fields.Integer()


class AccountSchema(Schema):
    card = fields.String()
    open_reservations = fields.Integer()
    documents_reserved = fields.Integer()
    documents_on_loan = fields.Integer()
    quota = fields.Integer()
    quota_left = fields.Integer()
    overdue_loans = fields.Integer()
    fines_cents = fields.Integer()
    fines = fields.List(fields.Nested(FineSchema))


SUSPENSION_WINDOW_DAYS = 366


class SuspendSchema(Schema):
    starts_at = Moment(required=True, data_key="from",
                       metadata={"description": f"at most {SUSPENSION_WINDOW_DAYS} days ago"})
    ends_at = Moment(required=True, data_key="until",
                     metadata={"description": f"in the future, at most {SUSPENSION_WINDOW_DAYS} days ahead"})
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))

    @validates_schema
    def sensible(self, data: dict, **kwargs) -> None:
        # A suspension is a policy for now and the coming months: one wholly past would excuse nothing in
        # the reminders to come, and one reaching years away is a typo.
        now, window = datetime.now(UTC), timedelta(days=SUSPENSION_WINDOW_DAYS)
        if data["ends_at"] <= data["starts_at"]:
            return  # upside down: the rule says so first (continuity.check_period)
        if data["starts_at"] < now - window:
            raise ValidationError(f"a suspension starts at most {SUSPENSION_WINDOW_DAYS} days ago", "from")
        if data["ends_at"] <= now:
            raise ValidationError("a suspension wholly in the past changes nothing: it must end in the future",
                                  "until")
        if data["ends_at"] > now + window:
            raise ValidationError(f"a suspension ends at most {SUSPENSION_WINDOW_DAYS} days ahead", "until")


class SuspensionSchema(Schema):
    id = fields.String()
    starts_at = fields.DateTime(data_key="from")
    ends_at = fields.DateTime(data_key="until")
    reason = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    resumed_at = fields.DateTime(allow_none=True)


class ContinuitySchema(Schema):
    suspended = fields.Boolean()
    current = fields.Nested(SuspensionSchema, allow_none=True)
    grace_days = fields.Integer()
    suspensions = fields.List(fields.Nested(SuspensionSchema))


class ShiftRequestSchema(Schema):
    closed_from = Moment(required=True)
    closed_until = Moment(required=True)
    rule = fields.String(required=True, validate=validate.OneOf(("fixed", "spread")))
    fixed_date = Day(load_default=None, data_key="date")
    opening_days = Int(1, 30, load_default=1)


class ShiftChangeSchema(Schema):
    kind = fields.String()
    id = fields.String()
    patron = fields.String()
    title = fields.String(allow_none=True)
    previous = fields.DateTime()
    new = fields.DateTime()


class ShiftSchema(Schema):
    id = fields.String(allow_none=True)
    preview = fields.Boolean()
    changes = fields.List(fields.Nested(ShiftChangeSchema))
    patrons = fields.Integer()


# --- the counter's day: calendar, slots, appointments, day sheet, selections ----------------------------------

class DayRangeSchema(Schema):
    first = Day(required=True, data_key="from", metadata={"description": "first day, YYYY-MM-DD"})
    last = Day(required=True, data_key="to", metadata={"description": "last day (included), YYYY-MM-DD"})


class DaySchema(Schema):
    day = Day(required=True, data_key="date", metadata={"description": "YYYY-MM-DD"})


def _opens_some_day(week: dict) -> None:
    # A week without a single range would close the point for good while patrons can still reserve there.
    if not any(week.values()):
        raise ValidationError("give at least one weekday with opening hours (close single days with closed days)")


class CalendarUpdateSchema(Schema):
    opening_hours = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
                                values=fields.List(fields.String(validate=validate.Length(max=40)),
                                                   validate=validate.Length(max=12)),
                                load_default=None, validate=_opens_some_day,
                                metadata={"description": 'per weekday, ranges: {"tuesday": ["10:00-12:30", '
                                                         '"14:00-18:00"]}; a weekday left out is closed; at '
                                                         'least one weekday opens'})
    slot_minutes = Int(5, 240, load_default=None)
    slot_capacity = Int(1, 100, load_default=None, metadata={"description": "patrons per slot"})


class CalendarDaySchema(Schema):
    day = fields.Date()
    open = fields.Boolean()
    closed_because = fields.String(allow_none=True)
    closes_at = fields.DateTime(allow_none=True)


class CalendarSchema(Schema):
    pickup_point = fields.String()
    opening_hours = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    own_hours = fields.Boolean(metadata={"description": "false: the network's default hours apply"})
    slot_minutes = fields.Integer()
    slot_capacity = fields.Integer()
    timezone = fields.String()
    days = fields.List(fields.Nested(CalendarDaySchema))


class CloseDaySchema(Schema):
    pickup_point = fields.String(load_default="*", validate=validate.Length(min=1, max=60),
                                 metadata={"description": "a pickup point, or * for the whole network"})
    day = Day(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=300))


class ClosedDaySchema(Schema):
    id = fields.String()
    pickup_point = fields.String(attribute="pickup_point_id")
    day = fields.Date()
    reason = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    appointments_cancelled = fields.Integer(allow_none=True)
    dates_moved = fields.Integer(allow_none=True, metadata={
        "description": "pickup deadlines and due dates on that day moved to the next opening day just now"})
    due_date_shift = fields.String(allow_none=True, metadata={
        "description": "the shift that moved them (undo with POST /due-date-shifts/{id}/undo)"})


class SlotSchema(Schema):
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    capacity = fields.Integer()
    booked = fields.Integer()
    free = fields.Integer()


class BookSlotSchema(Schema):
    starts_at = Moment(required=True, metadata={"description": "the start of a free slot"})


class AppointmentSchema(Schema):
    id = fields.String()
    reservation_id = fields.String()
    pickup_point = fields.String(attribute="pickup_point_id")
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    status = fields.String()
    booked_by = fields.String()
    booked_at = fields.DateTime()


class ReadySchema(Schema):
    hold_shelf = fields.String(load_default=None, validate=validate.Length(min=1, max=40),
                               metadata={"description": "where it waits; default: the card's last two digits"})


class SheetDocumentSchema(Schema):
    title = fields.String()
    barcode = fields.String(allow_none=True)
    shelf_mark = fields.String(allow_none=True)
    status = fields.String()


class SheetEntrySchema(Schema):
    reservation_id = fields.String()
    patron = fields.String()
    status = fields.String()
    hold_shelf = fields.String(allow_none=True)
    claimed_by = fields.String(allow_none=True)
    arrived_at = fields.DateTime(allow_none=True)
    selection_id = fields.String(allow_none=True)
    waiting_outside = fields.Boolean()
    arrived_before_ready = fields.Boolean()
    documents = fields.List(fields.Nested(SheetDocumentSchema))


class SheetSlotSchema(Schema):
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    capacity = fields.Integer()
    reservations = fields.List(fields.Nested(SheetEntrySchema))


class DaySheetSchema(Schema):
    pickup_point = fields.Nested(PickupPointSchema)
    day = fields.Date()
    open = fields.Boolean()
    closed_because = fields.String(allow_none=True)
    slots = fields.List(fields.Nested(SheetSlotSchema))
    without_appointment = fields.List(fields.Nested(SheetEntrySchema), metadata={"description": "ready, no slot"})
    arrived_before_ready = fields.List(fields.Nested(SheetEntrySchema))
    waiting_outside = fields.List(fields.Nested(SheetEntrySchema))


class RequestSelectionSchema(Schema):
    patron = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9-]{1,40}$"))
    pickup_point = fields.String(required=True, validate=validate.Length(min=1, max=60))
    tastes = fields.String(required=True, validate=validate.Length(min=3, max=1000),
                           metadata={"description": 'free text: "polars scandinaves", "BD pour un enfant de 8 ans"'})
    audience = fields.String(required=True, validate=validate.OneOf(AUDIENCES))
    age_min = Int(0, 18, load_default=None, metadata={"description": "youth only"})
    age_max = Int(0, 18, load_default=None, metadata={"description": "youth only"})
    kinds = fields.List(fields.String(validate=validate.OneOf(MATERIALS)), load_default=lambda: ["book"],
                        validate=validate.Length(min=1))
    documents = Int(1, 50, required=True)
    channel = fields.String(load_default=None, validate=validate.OneOf(CHANNELS),
                            metadata={"description": "web for a patron; staff default to phone"})


class ChosenSchema(Schema):
    title_id = fields.String()
    title = fields.String()
    material = fields.String()
    status = fields.String()


class SelectionSchema(Schema):
    id = fields.String()
    patron = fields.String()
    pickup_point = fields.Nested(PickupPointSchema)
    channel = fields.String()
    tastes = fields.String()
    audience = fields.String()
    age_min = fields.Integer(allow_none=True)
    age_max = fields.Integer(allow_none=True)
    kinds = fields.List(fields.String())
    documents = fields.Integer()
    status = fields.String(metadata={"description": "requested, prepared, nothing_available, cancelled"})
    requested_at = fields.DateTime()
    claimed_by = fields.String(allow_none=True)
    prepared_at = fields.DateTime(allow_none=True)
    note = fields.String(allow_none=True)
    reservation_id = fields.String(allow_none=True)
    reservation_status = fields.String(allow_none=True)
    chosen = fields.List(fields.Nested(ChosenSchema))


class PrepareSelectionSchema(Schema):
    titles = fields.List(fields.String(validate=validate.Length(min=1, max=36)), required=True,
                         validate=validate.Length(min=1, max=50))
    note = fields.String(load_default=None, validate=validate.Length(max=1000))


class NothingAvailableSchema(Schema):
    note = fields.String(required=True, validate=validate.Length(min=3, max=1000),
                         metadata={"description": "for the patron: what was looked for, what to try"})


# --- figures: per local day, pickup point and channel; slot occupancy --------------------------------------

class StatsRowSchema(Schema):
    day = fields.Date(metadata={"description": "local day (the drive's time zone)"})
    pickup_point = fields.String()
    channel = fields.String(metadata={"description": "web, phone or counter"})
    reservations_placed = fields.Integer()
    selections_asked = fields.Integer()
    selections_prepared = fields.Integer(metadata={"description": "dealt with that day, nothing_available included"})
    selections_nothing_available = fields.Integer()
    median_prepare_minutes = fields.Float(allow_none=True,
                                          metadata={"description": "from asked to prepared, selections prepared "
                                                                   "that day"})
    collections = fields.Integer()
    no_shows = fields.Integer(metadata={"description": "expired that day: not collected by the deadline"})
    median_wait_seconds = fields.Float(allow_none=True,
                                       metadata={"description": "from \"I'm here\" to hand-over, collections of "
                                                                "that day with an arrival"})


class SlotOccupancySchema(Schema):
    day = fields.Date()
    pickup_point = fields.String()
    places = fields.Integer(metadata={"description": "the day's slots × their capacity"})
    booked = fields.Integer(metadata={"description": "appointments booked or honoured on that day's slots"})
    occupancy = fields.Float(allow_none=True, metadata={"description": "booked / places; null without places"})


class StatsTotalsSchema(Schema):
    reservations_placed = fields.Integer()
    selections_asked = fields.Integer()
    selections_prepared = fields.Integer()
    selections_nothing_available = fields.Integer()
    median_prepare_minutes = fields.Float(allow_none=True, metadata={"description": "over every sample"})
    collections = fields.Integer()
    no_shows = fields.Integer()
    median_wait_seconds = fields.Float(allow_none=True, metadata={"description": "over every sample"})
    places = fields.Integer()
    booked = fields.Integer()
    occupancy = fields.Float(allow_none=True)


class StatsSchema(Schema):
    first = fields.Date(data_key="from")
    last = fields.Date(data_key="to")
    rows = fields.List(fields.Nested(StatsRowSchema),
                       metadata={"description": "only where something happened; by day, pickup point, channel"})
    slots = fields.List(fields.Nested(SlotOccupancySchema),
                        metadata={"description": "counters and libraries (not bibliobus stops), days with places "
                                                 "or bookings"})
    totals = fields.Nested(StatsTotalsSchema)


class AuditQuerySchema(Schema):
    stuck_after_seconds = fields.Float(load_default=60.0, validate=validate.Range(min=0, max=86400 * 30))


class AuditLineSchema(Schema):
    reservation_id = fields.String()
    line_id = fields.String()
    title_id = fields.String()
    status = fields.String(metadata={"description": "the line's: pending (not yet handled by inventory), "
                                                    "allocated or waitlisted"})
    reservation_status = fields.String()
    placed_at = fields.AwareDateTime()


class AuditLinesSchema(Schema):
    lines = fields.List(fields.Nested(AuditLineSchema), metadata={
        "description": "open lines of open reservations that should hold a copy or a waitlist place in inventory"})
    stuck_placed = fields.List(fields.String(), metadata={
        "description": "reservations still `placed` after stuck_after_seconds"})


class ReannounceSchema(Schema):
    reservation_ids = fields.List(fields.String(validate=validate.Length(min=1, max=36)), required=True,
                                  validate=validate.Length(min=1, max=1000))
    dry_run = Flag(load_default=False)


class ReannouncedSchema(Schema):
    reservation_id = fields.String()
    status = fields.String(allow_none=True, metadata={"description": "null: no such reservation"})
    announced = fields.String(allow_none=True, metadata={"description": "the event said again (with "
                                                                        "`reannounced`), or null"})
