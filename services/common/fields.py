"""Fields every service's schemas share, so that what the code can handle is checked once at the edge (a 400
naming the field) and said in each OpenAPI document (where a schema-driven client or fuzzer reads it):

- `Day` and `Moment`: dates and aware datetimes within `EARLIEST`–`LATEST` (day arithmetic near year 1 or 9999
  overflows; no library business lies outside this century);
- `Int`: a whole number between bounds, never 1.5 truncated to 1 nor beyond what a column or a loop can take;
- `Flag`: a JSON true or false (not 0, "yes" or "off");
- `Id`, `Card`: strings no longer than the column they are looked up in (path ids included).
"""

import re
from datetime import date, datetime
from typing import Any

from marshmallow import ValidationError, fields, validate

EARLIEST = date(2000, 1, 1)
LATEST = date(2099, 12, 31)
# Said in the documents as a pattern (JSON Schema has no bounds for dates), checked below on the value itself.
_DAY = r"20\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_TIME = r"T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
_WINDOW = f"between {EARLIEST.isoformat()} and {LATEST.isoformat()}"


def _describe(kwargs: dict, pattern: str) -> dict:
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata.setdefault("pattern", pattern)
    text = metadata.get("description")
    metadata["description"] = f"{text} ({_WINDOW})" if text else _WINDOW
    kwargs["metadata"] = metadata
    return kwargs


def _in_window(day: date) -> None:
    if not EARLIEST <= day <= LATEST:
        raise ValidationError(f"must be {_WINDOW}")


class Day(fields.Date):
    """YYYY-MM-DD, within the window."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_describe(kwargs, f"^{_DAY}$"))

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> date:
        day = super()._deserialize(value, attr, data, **kwargs)
        _in_window(day)
        return day


class Moment(fields.AwareDateTime):
    """An ISO 8601 date and time with its offset, its day within the window."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_describe(kwargs, f"^{_DAY}{_TIME}$"))

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        _in_window(moment.date())
        return moment


_DIGITS = re.compile(r"-?\d{1,12}")


class Int(fields.Integer):
    """A whole number from `minimum` to `maximum`. In a body only a JSON integer (1.5, "2" and true are refused);
    in a query string (`text=True`) only digits."""

    def __init__(self, minimum: int, maximum: int, *, text: bool = False, **kwargs: Any) -> None:
        extra = kwargs.pop("validate", None)
        checks = [validate.Range(min=minimum, max=maximum)] + ([extra] if extra else [])
        super().__init__(strict=True, validate=checks, **kwargs)
        self.text = text

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if self.text and isinstance(value, str):
            if not _DIGITS.fullmatch(value):
                raise self.make_error("invalid")
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class Flag(fields.Boolean):
    """true or false, as JSON says them."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def Id(max_length: int = 36, **kwargs: Any) -> fields.String:  # noqa: N802 - reads as a field class
    """An identifier, as long as its column at most (a uuid: 36)."""
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


def Card(**kwargs: Any) -> fields.String:  # noqa: N802
    """A patron's card number (column of 40)."""
    return fields.String(validate=validate.Regexp(r"^[A-Za-z0-9-]{1,40}$"), **kwargs)
