"""Bibliobus HTTP bodies and answers."""

from marshmallow import Schema, fields, validate

from services.common.fields import Day, Id, Int
from services.events import TourSlot

PATH_IDS = {"stop_id": Id(60)}

THRESHOLD_MAX = 10_000
CARD = validate.Regexp(r"^[A-Za-z0-9-]{1,40}$")
REASON = fields.String(required=True, validate=validate.Length(min=3, max=500),
                       metadata={"description": "why (goes into the audit log)"})


class StopBodySchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    district = fields.String(required=True, validate=validate.Length(min=1, max=120))
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    capacity_per_visit = Int(1, 500, required=True,
                             metadata={"description": "reservations the vehicle carries per visit"})
    visits = fields.List(fields.Nested(TourSlot), required=True, validate=validate.Length(min=1, max=21))


class NewStopSchema(StopBodySchema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,59}$"),
                       metadata={"description": "lowercase slug, e.g. `saint-remy-mairie`"})


class VisitSchema(Schema):
    stop_id = fields.String()
    arrives_at = fields.DateTime()
    departs_at = fields.DateTime()


class StopSchema(NewStopSchema):
    """A stop as the API answers it: its description (as written) and its state."""

    enabled = fields.Boolean()
    mode = fields.String(metadata={"description": "auto (the rule decides), on or off (forced by an analyst)"})
    demand = fields.Integer(metadata={"description": "distinct patrons over the window"})
    pending_reservations = fields.Integer()
    enable_threshold = fields.Integer()
    disable_threshold = fields.Integer()
    consecutive_evaluations = fields.Integer()
    rounds_below = fields.Integer()
    own_thresholds = fields.Boolean()
    next_visit = fields.Nested(VisitSchema, allow_none=True)
    revision = fields.Integer()


class DemandPointSchema(Schema):
    day = fields.Date()
    demand = fields.Integer()


class DemandSchema(StopSchema):
    window_days = fields.Integer()
    reservations_in_window = fields.Integer()
    interests_in_window = fields.Integer()
    series = fields.List(fields.Nested(DemandPointSchema))


class DemandQuerySchema(Schema):
    days = Int(1, 366, text=True, load_default=60)


class InterestSchema(Schema):
    patron = fields.String(required=True, validate=CARD, metadata={"description": "the patron's card number"})


class OverrideSchema(Schema):
    mode = fields.String(required=True, validate=validate.OneOf(("on", "off", "auto")))
    reason = REASON


class ThresholdsSchema(Schema):
    enable_threshold = Int(0, THRESHOLD_MAX, required=True)
    disable_threshold = Int(0, THRESHOLD_MAX, required=True)
    consecutive_evaluations = Int(1, 1000, load_default=None)
    window_days = Int(1, 365, load_default=None)
    reason = REASON


class NetworkThresholdsSchema(Schema):
    enable_threshold = fields.Integer()
    disable_threshold = fields.Integer()
    consecutive_evaluations = fields.Integer()
    window_days = fields.Integer()
    updated_by = fields.String(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class ThresholdValuesSchema(Schema):
    enable_threshold = fields.Integer(allow_none=True)
    disable_threshold = fields.Integer(allow_none=True)
    consecutive_evaluations = fields.Integer(allow_none=True)
    window_days = fields.Integer(allow_none=True)


class ThresholdChangeSchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    changed_by = fields.String(metadata={"description": "the analyst's subject"})
    reason = fields.String(metadata={"description": "why, as they said it"})
    before = fields.Nested(ThresholdValuesSchema, metadata={"description": "null values: not known"})
    after = fields.Nested(ThresholdValuesSchema)


class StopThresholdsSchema(Schema):
    enable_threshold = Int(0, THRESHOLD_MAX, required=True, allow_none=True)
    disable_threshold = Int(0, THRESHOLD_MAX, required=True, allow_none=True)
    consecutive_evaluations = Int(1, 1000, load_default=None, allow_none=True)
    reason = REASON


class DecisionSchema(Schema):
    id = fields.Integer()
    stop_id = fields.String(allow_none=True)
    at = fields.DateTime()
    decided_by = fields.String()
    action = fields.String()
    reason = fields.String()
    note = fields.String(allow_none=True)
    demand = fields.Integer(allow_none=True)
    enable_threshold = fields.Integer()
    disable_threshold = fields.Integer()
    detail = fields.Dict(allow_none=True)


class HistoryQuerySchema(Schema):
    limit = Int(1, 1000, text=True, load_default=100)


class ManifestLineSchema(Schema):
    title_id = fields.String()
    title = fields.String(allow_none=True)
    barcode = fields.String(allow_none=True)


class ManifestEntrySchema(Schema):
    reservation_id = fields.String()
    patron = fields.String()
    lines = fields.List(fields.Nested(ManifestLineSchema))


class ManifestSchema(Schema):
    stop_id = fields.String()
    name = fields.String()
    enabled = fields.Boolean()
    visit = fields.Nested(VisitSchema, allow_none=True)
    capacity = fields.Integer()
    reservations = fields.List(fields.Nested(ManifestEntrySchema))
    left_for_later = fields.Integer(metadata={"description": "ready for this visit past its capacity"})


class WhatIfSchema(Schema):
    first = Day(required=True)
    last = Day(required=True)
    enable_threshold = Int(0, THRESHOLD_MAX, required=True)
    disable_threshold = Int(0, THRESHOLD_MAX, required=True)
    consecutive_evaluations = Int(1, 1000, load_default=None,
                                  metadata={"description": "days in a row below, in the replay"})
    window_days = Int(1, 365, load_default=None)


class FormatQuerySchema(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "png")))


class StopReplaySchema(Schema):
    stop_id = fields.String()
    name = fields.String()
    open_days = fields.Integer()
    demand = fields.List(fields.Integer())
    open = fields.List(fields.Boolean())


class WhatIfResultSchema(Schema):
    first = fields.Date()
    last = fields.Date()
    window_days = fields.Integer()
    enable_threshold = fields.Integer()
    disable_threshold = fields.Integer()
    consecutive_evaluations = fields.Integer()
    days = fields.List(fields.Date())
    stops = fields.List(fields.Nested(StopReplaySchema))
