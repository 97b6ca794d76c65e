"""Inventory's HTTP bodies and answers."""

from marshmallow import Schema, fields, validate

from services.common.fields import Flag, Id, Int, Moment
from services.events import MATERIALS

# The routes' path ids, as long as their columns at most.
PATH_IDS = {"title_id": Id(36), "barcode": Id(40)}


class NewTitleSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=500))
    author = fields.String(required=True, validate=validate.Length(min=1, max=300))
    isbn = fields.String(load_default=None, allow_none=True)
    material = fields.String(required=True, validate=validate.OneOf(MATERIALS))


class NewCopySchema(Schema):
    barcode = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9-]{1,40}$"))
    site = fields.String(required=True)
    shelf_mark = fields.String(required=True, validate=validate.Length(min=1, max=80))
    plastic_cover = Flag(load_default=False)


class SiteAvailabilitySchema(Schema):
    copies = fields.Integer()
    available = fields.Integer()


class TitleSchema(Schema):
    id = fields.String()
    title = fields.String()
    author = fields.String()
    isbn = fields.String(allow_none=True)
    material = fields.String()
    availability = fields.Dict(keys=fields.String(), values=fields.Nested(SiteAvailabilitySchema))
    waitlist = fields.Integer()


class CopyHistorySchema(Schema):
    at = fields.DateTime()
    what = fields.String()
    reservation_id = fields.String(allow_none=True)
    detail = fields.Dict()


class CopySchema(Schema):
    barcode = fields.String()
    title_id = fields.String()
    title = fields.String()
    site = fields.String()
    shelf_mark = fields.String()
    plastic_cover = fields.Boolean()
    status = fields.String()
    reservation_id = fields.String(allow_none=True)
    quarantine_until = fields.DateTime(allow_none=True)
    history = fields.List(fields.Nested(CopyHistorySchema))


class SearchQuerySchema(Schema):
    q = fields.String(load_default="")
    limit = Int(1, 100, text=True, load_default=20)
    offset = Int(0, 1_000_000, text=True, load_default=0)


class SearchResultSchema(Schema):
    total = fields.Integer()
    titles = fields.List(fields.Nested(TitleSchema))


class CheckinSchema(Schema):
    barcode = fields.String(required=True, validate=validate.Length(min=1, max=40))
    returned_at = Moment(load_default=None, allow_none=True,
                                       metadata={"description": "when it was dropped in the return box"})


class CheckinResultSchema(Schema):
    barcode = fields.String()
    status = fields.String()
    returned_at = fields.DateTime()
    quarantine_until = fields.DateTime()


class ImportResultSchema(Schema):
    titles_created = fields.Integer()
    copies_created = fields.Integer()


class HeldCopySchema(Schema):
    reservation_id = fields.String()
    line_id = fields.String()
    title_id = fields.String()
    barcode = fields.String()


class WaitingLineSchema(Schema):
    reservation_id = fields.String()
    line_id = fields.String()
    title_id = fields.String()


class HoldingsSchema(Schema):
    held = fields.List(fields.Nested(HeldCopySchema), metadata={"description": "copies set aside (allocated)"})
    waiting = fields.List(fields.Nested(WaitingLineSchema), metadata={"description": "waitlist places, in order"})
