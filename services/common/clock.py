"""The one clock of Drive: aware UTC datetimes, stored as such on every backend (`services.common.types`)."""

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
