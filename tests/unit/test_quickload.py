"""The quick load of event schemas (`services.common.quickload`) against marshmallow's own, on every type of the
catalogue: a valid payload, then every mutation of it (each value replaced by odd ones, each key removed, an unknown
key added). Wherever the quick load returns, marshmallow must accept the same input and return the same value, of
the same types, keys in the same order; everything else goes to marshmallow (which gives the error it always gave)."""

import copy
import uuid
from datetime import datetime
from typing import Any

import pytest
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

import services.events  # noqa: F401  (fills the registry)
from services.common.envelope import ENVELOPE, QUICK_ENVELOPE, REGISTRY, Event
from services.common.errors import PermanentFailure
from services.common.quickload import Unusual, compile_schema

ODD = [None, "", "x", 0, 1, -3, True, False, 1.5, float("nan"), [], {}, ["x"], {"k": 1}, b"x",
       "2026-03-01", "2026-03-01T10:00:00", "2026-03-01T10:00:00+01:00", "2026-03-01T10:00:00Z", "not a date",
       str(uuid.uuid4()), str(uuid.uuid4()).upper(), "7"]


def valid(field: fields.Field) -> Any:
    choices = next((v.choices for v in field.validators if isinstance(v, validate.OneOf)), None)
    if choices:
        return list(choices)[0]
    patterns = [v for v in field.validators if isinstance(v, validate.Regexp)]
    if patterns:  # the first of a few candidates that fits
        return next(text for text in ("10:15", "a_type", "text") if all(p.regex.match(text) for p in patterns))
    if isinstance(field, fields.Nested):
        return valid_data(field.schema)
    if isinstance(field, fields.List):
        return [valid(field.inner), valid(field.inner)]
    if isinstance(field, fields.AwareDateTime):
        return "2026-12-02T10:15:30.123456+00:00"
    if isinstance(field, fields.Boolean):
        return True
    if isinstance(field, fields.Integer):
        return 3
    if isinstance(field, fields.Float):
        return 2.5
    if isinstance(field, fields.UUID):
        return str(uuid.uuid4())
    if isinstance(field, fields.Dict):
        return {"a": 1}
    return "text"


def valid_data(schema: Schema) -> dict[str, Any]:
    return {field.data_key or name: valid(field) for name, field in schema.load_fields.items()}


def mutations(data: Any) -> list[Any]:
    """Every variant of `data` with one change: a value replaced, a key removed, an unknown key added."""
    found = []
    if isinstance(data, dict):
        found.append({**data, "unknown_key": 1})
        for key, value in data.items():
            found.append({k: v for k, v in data.items() if k != key})
            for odd in ODD:
                found.append({**data, key: odd})
            for inner in mutations(value):
                found.append({**data, key: inner})
    elif isinstance(data, list):
        found.append([])
        for index, value in enumerate(data):
            for replacement in [*ODD, *mutations(value)]:
                changed = copy.copy(data)
                changed[index] = replacement
                found.append(changed)
    return found


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return a == b and a.isoformat() == b.isoformat() and a.tzinfo == b.tzinfo
    return a == b or (a != a and b != b)  # NaN


def check(schema: Schema, unknown: str | None, data: Any) -> str:
    quick = compile_schema(schema, unknown)
    assert quick is not None
    try:
        got = quick(data)
    except Unusual:
        return "marshmallow"
    try:
        expected = schema.load(data, unknown=unknown) if unknown else schema.load(data)
    except ValidationError as exc:
        pytest.fail(f"quick load accepted what marshmallow refuses: {data!r}: {exc.messages}")
    assert same(got, expected), (data, got, expected)
    return "quick"


@pytest.mark.parametrize("kind", list(REGISTRY), ids=lambda k: f"{k.source}.{k.type}")
def test_the_quick_load_of_each_event_type_is_marshmallows(kind):
    schema = REGISTRY.schema(kind.source, kind.type)
    data = valid_data(schema)
    schema.load(data, unknown=EXCLUDE)  # the generated payload is valid
    assert check(schema, EXCLUDE, data) == "quick"
    ways = [check(schema, EXCLUDE, variant) for variant in mutations(data)]
    assert "quick" in ways and "marshmallow" in ways


def test_the_quick_envelope_is_marshmallows():
    message = Event(type="reservation_ready", source="reservations", data={"a": 1}, correlation_id="c").to_message()
    assert QUICK_ENVELOPE is not None and check(ENVELOPE, None, message) == "quick"
    ways = [check(ENVELOPE, None, variant) for variant in mutations(message)]
    assert "quick" in ways and "marshmallow" in ways


def test_a_malformed_event_is_refused_with_marshmallows_message():
    schema = REGISTRY.schema("reservations", "reservation_ready")
    good = Event(type="reservation_ready", source="reservations", data=valid_data(schema)).to_message()
    assert REGISTRY.read(good).data == schema.load(good["data"], unknown=EXCLUDE)
    for bad, says in (({**good, "data": {**good["data"], "patron": 7}}, "patron"),
                      ({**good, "occurred_at": "yesterday"}, "occurred_at"),
                      ({**good, "extra": 1}, "extra")):
        with pytest.raises(PermanentFailure, match=says):
            REGISTRY.read(bad)


def test_what_the_quick_path_does_not_handle_goes_to_marshmallow():
    class WithHook(Schema):
        name = fields.String()

        @post_load
        def upper(self, data, **kwargs):
            return {k: v.upper() for k, v in data.items()}

    class WithCustomField(Schema):
        email = fields.Email()

    assert compile_schema(WithHook()) is None and compile_schema(WithCustomField()) is None
