"""A marshmallow schema's load, compiled once into plain Python for the common case: input exactly as Drive writes
it (JSON types, ISO moments, no unknown keys where the schema refuses them). Anything else — a wrong type, a missing
required field, a failed validator, a field kind or hook not handled here — raises `Unusual`, and the caller loads
with marshmallow itself, which returns the same value or the error it always gave. So the quick path never decides
that a message is malformed; it only skips marshmallow's per-field machinery (most of the cost of reading an event:
~120 µs of the ~145 µs of a `reservation_ready`) for messages that fit.

Exact by construction for what it accepts: each handled field kind returns what marshmallow 4's own `_deserialize`
returns for such input (`tests/unit/test_quickload.py` compares both on the catalogue's events and on mutations of
them)."""

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields
from marshmallow.utils import missing

Loader = Callable[[Any], Any]


class Unusual(Exception):  # noqa: N818 (not an error: the signal to load with marshmallow)
    """Not the common case: load with marshmallow."""


class Unsupported(Exception):  # noqa: N818
    """A schema with a field kind or hook the quick path does not handle: it always goes through marshmallow."""


def compile_schema(schema: Schema, unknown: str | None = None) -> Loader | None:
    """The quick load of `schema` (with `unknown` as `Schema.load` takes it), or None if it has something not handled
    here."""
    try:
        return _schema_loader(schema, unknown or schema.unknown)
    except Unsupported:
        return None


def _schema_loader(schema: Schema, unknown: str) -> Loader:
    if any(schema._hooks.values()) or schema.many or schema.partial or unknown not in (RAISE, EXCLUDE):
        raise Unsupported(type(schema).__name__)
    plan = []
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        attribute = field.attribute or name
        if "." in attribute:
            raise Unsupported(attribute)
        plan.append((key, attribute, field.required, field.load_default, _field_loader(field)))
    known = frozenset(key for key, *_ in plan)
    refuse_unknown = unknown == RAISE

    def load(data: Any) -> dict[str, Any]:
        if type(data) is not dict or (refuse_unknown and not known.issuperset(data)):
            raise Unusual
        out = {}
        for key, attribute, required, default, field_load in plan:
            value = data.get(key, missing)
            if value is missing:
                if required:
                    raise Unusual
                if default is not missing:
                    out[attribute] = default() if callable(default) else default
                continue
            out[attribute] = field_load(value)
        return out

    return load


def _field_loader(field: fields.Field) -> Loader:
    """Field.deserialize for a present value: None, the kind's conversion, then the validators."""
    if field.pre_load or field.post_load:
        raise Unsupported(repr(field))
    convert = _conversion(field)
    allow_none, validators = field.allow_none, list(field.validators)

    def load(value: Any) -> Any:
        if value is None:
            if allow_none:
                return None
            raise Unusual
        output = convert(value)
        for validator in validators:
            try:
                if validator(output) is False:
                    raise Unusual
            except ValidationError:
                raise Unusual from None
        return output

    return load


def _conversion(field: Any) -> Loader:  # Any: the attributes read are those of the kind just checked
    kind = type(field)
    if kind is fields.String:
        return _exactly(str)
    if kind is fields.Integer:
        return _exactly(int)  # not bool (type() is exact): marshmallow refuses True/False
    if kind is fields.Boolean:
        return _exactly(bool)
    if kind is fields.Float:
        return _float  # finite numbers only: NaN and infinities go to marshmallow, whichever way it takes them
    if kind is fields.UUID:
        return _uuid
    if kind is fields.AwareDateTime and field.format in (None, "iso", "iso8601"):
        zone = field.default_timezone
        return lambda value: _aware(value, zone)
    if kind is fields.Dict and field.key_field is None and field.value_field is None:
        return _dict
    if kind is fields.List:
        inner = _field_loader(field.inner)
        return lambda value: _list(value, inner)
    if kind is fields.Nested and not field.many and not field.only and not field.exclude \
            and isinstance(field.nested, type) and issubclass(field.nested, Schema):
        return _schema_loader(field.schema, field.unknown or field.schema.unknown)
    raise Unsupported(repr(field))


def _exactly(kind: type) -> Loader:
    def load(value: Any) -> Any:
        if type(value) is not kind:
            raise Unusual
        return value

    return load


def _float(value: Any) -> float:
    if type(value) is float and value == value and value not in (float("inf"), float("-inf")):
        return value
    if type(value) is int:
        return float(value)
    raise Unusual


def _uuid(value: Any) -> uuid.UUID:
    if type(value) is not str:
        raise Unusual
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Unusual from None


def _aware(value: Any, zone: Any) -> datetime:
    if type(value) is not str:
        raise Unusual
    try:
        moment = datetime.fromisoformat(value)  # marshmallow 4's "iso" deserialisation
    except ValueError:
        raise Unusual from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        if zone is None:
            raise Unusual
        moment = moment.replace(tzinfo=zone)
    return moment


def _dict(value: Any) -> dict:
    if type(value) is not dict:
        raise Unusual
    return dict(value)


def _list(value: Any, inner: Loader) -> list:
    if type(value) is not list:
        raise Unusual
    return [inner(item) for item in value]
