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


class ReservationPlaced(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    channel = fields.String(required=True)
    lines = fields.List(fields.Nested(LineRef), required=True, validate=validate.Length(min=1))
    placed_at = fields.AwareDateTime(required=True)


class ReservationCancelled(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    cancelled_by = fields.String(required=True, validate=validate.OneOf(("patron", "staff")))
    pickup_point = fields.Nested(PickupPointRef, required=True)
    lines = fields.List(fields.Nested(LineRef), required=True)


class ReservationReady(Schema):
    reservation_id = fields.String(required=True)
    patron = fields.String(required=True)
    pickup_point = fields.Nested(PickupPointRef, required=True)
    pickup_deadline = fields.AwareDateTime(required=True)
    lines = fields.List(fields.Nested(LineRef), required=True)


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


class ItemsUnavailable(Schema):
    reservation_id = fields.String(required=True)
    lines = fields.List(fields.Nested(WaitingLine), required=True, validate=validate.Length(min=1))


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


for _type, _schema, _summary in [
    ("reservation_placed", ReservationPlaced, "A patron (or staff for them) reserved titles at a pickup point."),
    ("reservation_cancelled", ReservationCancelled, "The patron or staff cancelled before collection."),
    ("reservation_ready", ReservationReady, "Prepared and waiting on the hold shelf until the deadline."),
    ("reservation_collected", ReservationCollected, "Handed over: loans start."),
    ("reservation_expired", ReservationExpired, "Not collected by its deadline: copies go back."),
    ("loan_overdue", LoanOverdue, "A loan passed its due date (once per reminder step)."),
]:
    REGISTRY.register("reservations", _type, _schema, _summary)

for _type, _schema, _summary in [
    ("items_allocated", ItemsAllocated, "Copies were set aside for reservation lines."),
    ("items_unavailable", ItemsUnavailable, "No copy free now: the lines wait on the title's waitlist."),
    ("item_returned", ItemReturned, "A copy was checked in and went into quarantine."),
    ("copy_available", CopyAvailable, "A copy is back on the shelf (quarantine over, or released)."),
    ("title_catalogued", TitleCatalogued, "A title was added to the catalogue (or its record changed)."),
]:
    REGISTRY.register("inventory", _type, _schema, _summary)
