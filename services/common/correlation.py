"""Correlation: which request (or timer run) an event comes from, and which event or request caused it.

A chain starts at an HTTP request (its valid `X-Request-ID`, else a new uuid4) or at a timer run (a new uuid4
per tick); every event published while handling it carries `correlation_id` (the chain) and `causation_id`
(the request, tick or event handled). The cause of the work in progress lives in a context variable (per green
thread, as structlog's log context): `Events.publish` reads it, and a batch handler sets it event by event with
`caused_by(event)`. Plain functions: no nameko, no broker.
"""

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON = "drive.request_id"  # where the WSGI app leaves the request's id for the route's worker
MAX_ID_LENGTH = 128
# Letters, digits and a few separators: safe in a log line, a header and a URL, whatever a proxy generates
# (uuids, `abc-123`, `Root=1-67891233-abcdef012345678912345678` from AWS, base64url ids).
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]*")


@dataclass(frozen=True)
class Cause:
    correlation_id: str
    causation_id: str | None


class Caused(Protocol):
    """What a cause is taken from: an `Event` (services.common.envelope)."""

    @property
    def id(self) -> str: ...

    @property
    def correlation_id(self) -> str | None: ...


_current: ContextVar[Cause | None] = ContextVar("drive_cause", default=None)


def new_id() -> str:
    return str(uuid.uuid4())


def valid_id(value: Any) -> str | None:
    """The id as given when it is a bounded string of safe characters, else None."""
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and _SAFE_ID.fullmatch(value):
        return value
    return None


def request_id(header: str | None) -> str:
    """The correlation id of an HTTP request: its `X-Request-ID` when valid, else a new one (never an error:
    a bad header from a client or proxy must not refuse the request)."""
    return valid_id(header) or new_id()


def starting(correlation_id: str | None = None) -> Cause:
    """The cause of a new chain (a request, a timer tick): it is its own correlation and causation."""
    correlation_id = correlation_id or new_id()
    return Cause(correlation_id, correlation_id)


def cause_of(event: Caused) -> Cause:
    """What an event handler's own events carry: the handled event's chain (an older event without one starts
    a chain named after itself), caused by that event."""
    return Cause(valid_id(event.correlation_id) or event.id, event.id)


def current() -> Cause | None:
    return _current.get()


def set_cause(cause: Cause | None) -> None:
    """The cause of the worker's work from now on, for its events and its log lines."""
    _current.set(cause)
    if cause is not None:
        structlog.contextvars.bind_contextvars(correlation_id=cause.correlation_id)


def for_publishing() -> Cause:
    """The cause an event published now carries: the current one, or a chain of its own (a tool, a script)."""
    return current() or Cause(new_id(), None)


@contextmanager
def caused_by(event: Caused) -> Iterator[Cause]:
    """Inside a batch handler: what is published (and logged) in the block is caused by this event."""
    cause = cause_of(event)
    token = _current.set(cause)
    log_tokens = structlog.contextvars.bind_contextvars(correlation_id=cause.correlation_id, event_id=event.id)
    try:
        yield cause
    finally:
        structlog.contextvars.reset_contextvars(**log_tokens)
        _current.reset(token)
