"""The event envelope every message carries, and the registry of event types a service publishes.

`{id, type, version, occurred_at, source, correlation_id, causation_id, data}`: staff apps build on this shape,
so it changes only additively (a new field, a bumped `version`), never by renaming or removing.
"""

import builtins
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from services.common import correlation, quickload
from services.common.errors import PermanentFailure


class EnvelopeSchema(Schema):
    id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]*$"))
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True, format="iso", default_timezone=UTC)
    source = fields.String(required=True)
    # Always written; optional when read, so that messages older than them are read still (services.common.correlation).
    correlation_id = fields.String(load_default=None, allow_none=True, metadata={
        "description": "The chain this event belongs to: the X-Request-ID of the HTTP request (or the id of the "
                       "timer run) it started from, carried by every event it led to. Log lines carry it too."})
    causation_id = fields.String(load_default=None, allow_none=True, metadata={
        "description": "What caused this event: the id of the event whose handling published it, or the "
                       "correlation id itself for the request or timer run that started the chain; null when "
                       "published by a tool outside any request."})
    data = fields.Dict(required=True)


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    source: str
    version: int = 1
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None  # None only for an older message read (`services.common.correlation`)
    causation_id: str | None = None

    def to_message(self) -> dict[str, Any]:
        return ENVELOPE.dump(
            {"id": self.id, "type": self.type, "version": self.version,
             "occurred_at": self.occurred_at, "source": self.source, "correlation_id": self.correlation_id,
             "causation_id": self.causation_id, "data": self.data}
        )


@dataclass(frozen=True)
class EventType:
    source: str
    type: str
    version: int
    schema: builtins.type[Schema]  # `type` is a field here
    summary: str


class EventRegistry:
    """`(source, type) → data schema`: what may be published, and how to read what arrives.

    Each schema is built once and reused: building a marshmallow schema deep-copies its fields, which cost
    more than the load or dump itself at a few thousand events a second. Reuse is safe: loading and dumping
    keep no state on the instance, and never yield to another green thread midway."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str], EventType] = {}
        self._schemas: dict[EventType, Schema] = {}
        self._quick: dict[EventType, quickload.Loader | None] = {}  # None: marshmallow only

    def register(self, source: str, type_: str, schema: type[Schema], summary: str, version: int = 1) -> None:
        self._types[(source, type_)] = EventType(source, type_, version, schema, summary)

    def __iter__(self):
        return iter(sorted(self._types.values(), key=lambda t: (t.source, t.type)))

    def get(self, source: str, type_: str) -> EventType:
        try:
            return self._types[(source, type_)]
        except KeyError:
            raise PermanentFailure(f"unknown event type {source}.{type_}") from None

    def schema(self, source: str, type_: str) -> Schema:
        """The data schema of an event type, built on first use."""
        kind = self.get(source, type_)  # raises for a type not (or no longer) registered
        schema = self._schemas.get(kind)
        if schema is None:
            schema = self._schemas[kind] = kind.schema()
        return schema

    def build(self, source: str, type_: str, data: dict[str, Any],
              cause: correlation.Cause | None = None) -> Event:
        """Validate outgoing data against its schema and wrap it in an envelope, with the cause of the work in
        progress (`services.common.correlation`) unless told."""
        kind = self.get(source, type_)
        schema = self.schema(source, type_)
        clean = schema.dump(schema.load(schema.dump(data)))
        cause = cause or correlation.for_publishing()
        return Event(type=type_, data=clean, source=source, version=kind.version,
                     correlation_id=cause.correlation_id, causation_id=cause.causation_id)

    def read(self, message: dict[str, Any]) -> Event:
        """Validate an incoming message; a message that does not fit can never succeed. The common case is read by
        the schemas' quick loads (`services.common.quickload`: the same result); anything unusual by marshmallow
        itself, which says what is wrong."""
        try:
            if QUICK_ENVELOPE is None:
                raise quickload.Unusual
            envelope = QUICK_ENVELOPE(message)
            kind = self.get(envelope["source"], envelope["type"])
            if kind not in self._quick:
                self._quick[kind] = quickload.compile_schema(self.schema(kind.source, kind.type), EXCLUDE)
            quick = self._quick[kind]
            if quick is None:
                raise quickload.Unusual
            data = quick(envelope["data"])
        except quickload.Unusual:
            try:
                envelope = ENVELOPE.load(message)
                data = self.schema(envelope["source"], envelope["type"]).load(envelope["data"], unknown=EXCLUDE)
            except ValidationError as exc:
                raise PermanentFailure(f"malformed event: {exc.messages}") from exc
        return Event(type=envelope["type"], data=data, source=envelope["source"],
                     version=envelope["version"], id=str(envelope["id"]),
                     occurred_at=envelope["occurred_at"], correlation_id=envelope["correlation_id"],
                     causation_id=envelope["causation_id"])


def exchange_name(source: str) -> str:
    return f"{source}.events"


ENVELOPE = EnvelopeSchema()  # built once (see EventRegistry)
QUICK_ENVELOPE = quickload.compile_schema(ENVELOPE)

# The one registry of this process, filled by `services.events` (the event catalogue).
REGISTRY = EventRegistry()
