"""Reservations' HTTP bodies and answers."""

from marshmallow import Schema, fields, validate

CHANNELS = ("web", "phone", "counter")


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


class SuspendSchema(Schema):
    starts_at = fields.AwareDateTime(required=True, data_key="from")
    ends_at = fields.AwareDateTime(required=True, data_key="until")
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


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
    closed_from = fields.AwareDateTime(required=True)
    closed_until = fields.AwareDateTime(required=True)
    rule = fields.String(required=True, validate=validate.OneOf(("fixed", "spread")))
    fixed_date = fields.Date(load_default=None, data_key="date")
    opening_days = fields.Integer(load_default=1, validate=validate.Range(min=1, max=30))


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
