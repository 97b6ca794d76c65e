"""The common kit: what every Drive service is built from, imported from here (`from services.common import …`).

A service is a `DriveService` with a `Database`, an `OutboxRelay` and a `Configured` policy; its entrypoints are
`route`s (guarded by the role tuples), `event_handler`s and `batch_event_handler`s (their transaction guarded by
the inbox with `once` / `once_each`; a batch handler publishes each event's consequences inside `caused_by(event)`)
and `timer`s; its settings are declared once in a `Settings` table.
The modules behind these names are the kit's own business: tools and tests may reach into them.

Names are loaded on first use, so that a tool importing `services.common.settings` does not load nameko and eventlet.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

_HOMES = {
    "auth": ("ANALYST", "ANYONE", "ANYONE_OR_LINK", "OPS", "PATRON_OR_STAFF", "PATRON_STAFF_OR_LINK", "ROLES", "STAFF",
             "TEAM", "Principal"),
    "batching": ("batch_event_handler", "first_deliveries", "once_each"),
    "clock": ("now",),
    "correlation": ("caused_by",),
    "database": ("Database", "insert_new", "is_postgres"),
    "envelope": ("Event",),
    "errors": ("Conflict", "DriveError", "Forbidden", "Invalid", "NotFound"),
    "http": ("route",),
    "messaging": ("broadcast_handler", "event_handler"),
    "relay": ("Events", "OutboxRelay"),
    "reliability": ("InboxMixin", "OutboxMixin", "first_delivery", "once"),
    "service": ("Configured", "DriveService"),
    "settings": ("Setting", "Settings", "setting"),
    "timers": ("TimerWake", "timer"),
    "types": ("UtcDateTime",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = [  # the same names as _HOMES (tests/unit/test_common_kit.py checks it), literally for the linters
    "ANALYST", "ANYONE", "ANYONE_OR_LINK", "OPS", "PATRON_OR_STAFF", "PATRON_STAFF_OR_LINK", "ROLES", "STAFF", "TEAM",
    "Principal",
    "batch_event_handler", "first_deliveries", "once_each", "now", "caused_by", "Database", "insert_new", "is_postgres",
    "Event",
    "Conflict", "DriveError", "Forbidden", "Invalid", "NotFound", "route", "broadcast_handler", "event_handler",
    "Events", "OutboxRelay",
    "InboxMixin", "OutboxMixin", "first_delivery", "once", "Configured", "DriveService", "Setting", "Settings",
    "setting", "TimerWake", "timer", "UtcDateTime",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME_OF[name]}"), name)


if TYPE_CHECKING:  # what the type checker sees: the same names, eagerly
    from services.common.auth import (
        ANALYST,
        ANYONE,
        ANYONE_OR_LINK,
        OPS,
        PATRON_OR_STAFF,
        PATRON_STAFF_OR_LINK,
        ROLES,
        STAFF,
        TEAM,
        Principal,
    )
    from services.common.batching import batch_event_handler, first_deliveries, once_each
    from services.common.clock import now
    from services.common.correlation import caused_by
    from services.common.database import Database, insert_new, is_postgres
    from services.common.envelope import Event
    from services.common.errors import Conflict, DriveError, Forbidden, Invalid, NotFound
    from services.common.http import route
    from services.common.messaging import broadcast_handler, event_handler
    from services.common.relay import Events, OutboxRelay
    from services.common.reliability import InboxMixin, OutboxMixin, first_delivery, once
    from services.common.service import Configured, DriveService
    from services.common.settings import Setting, Settings, setting
    from services.common.timers import TimerWake, timer
    from services.common.types import UtcDateTime
