"""Configuration: every setting declared once, in a table beside the code that reads it (key, default, type, what
it sets); a value comes from nameko's config dict first, the environment second, then the declared default.

The common kit's table is `COMMON` below; each service declares its own in its `policy` module. config.yaml holds
only what nameko itself reads (broker, listen address, database, workers, logging). docs/configuration.md is
generated from both (`python -m services.configuration`), and a test fails when it is stale.
"""

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    cast: Callable[[Any], Any]
    doc: str


class Settings:
    """One table of settings (a service's, or the common kit's), each key declared once in all of Drive."""

    def __init__(self, scope: str, *settings: Setting) -> None:
        self.scope = scope
        self.settings = settings
        for declared in settings:
            known = DECLARED.get(declared.key)
            if known is not None and known != declared:
                raise ValueError(f"{declared.key} is declared twice, differently")
            DECLARED[declared.key] = declared

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def default(self, key: str) -> Any:
        return next(s.default for s in self.settings if s.key == key)


DECLARED: dict[str, Setting] = {}
_DECLARED_DEFAULT: Any = object()


def setting(config: Mapping[str, Any] | None, key: str, default: Any = _DECLARED_DEFAULT,
            cast: Callable[[Any], Any] | None = None) -> Any:
    """One value of configuration, cast to its declared type (`default` and `cast` only for undeclared keys)."""
    declared = DECLARED.get(key)
    if default is _DECLARED_DEFAULT:
        default = declared.default if declared else None
    cast = cast or (declared.cast if declared else str)
    value = config.get(key) if config else None
    if value is None:
        value = os.environ.get(key)
    if value is None or value == "":
        return default
    if cast is bool and isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return cast(value)


def amqp_uri(config: Mapping[str, Any] | None = None) -> str:
    return setting(config, "AMQP_URI")


COMMON = Settings(
    "common",
    Setting("DRIVE_ENV", "production", str,
            "`dev` marks the embedded default (make up, drive up, the tests): only there may a service start on the "
            "development secret, default passwords or SQLite (services/common/deployment.py)"),
    Setting("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/", str,
            "the broker (nameko reads it from config.yaml, whose default must be this one)"),
    Setting("JWT_SECRET", "drive-embedded-dev-secret-change-me", str,
            "the shared secret of HS256 tokens (the embedded default is for development only)"),
    Setting("JWT_ISSUER", "drive", str, "the `iss` a token must carry"),
    Setting("JWT_AUDIENCE", "drive", str, "the `aud` a token must carry"),
    Setting("JWT_JWKS_URL", None, str, "the identity provider's keys (RS256/ES256) instead of the shared secret"),
    Setting("WEB_URL", "http://127.0.0.1:8005", str,
            "the base of every link to the web pages (the counter's board, the patron's page of a ready message)"),
    Setting("PATRON_LINK_SECRET", "drive-embedded-dev-link-secret-change-me", str,
            "the HMAC key of patron links (the ready message's token; the embedded default is for development only)"),
    Setting("EVENT_MAX_ATTEMPTS", 5, int, "deliveries of an event to a handler before it is dead-lettered"),
    Setting("EVENT_RETRY_BASE_SECONDS", 0.2, float, "the first pause before an event is tried again (it doubles)"),
    Setting("EVENT_BATCH_SIZE", 200, int, "events a batch handler takes in one transaction at most"),
    Setting("EVENT_BATCH_LINGER_SECONDS", 0.05, float, "how long a batch handler waits for a batch to fill"),
    Setting("EVENT_BATCH_PREFETCH", 1000, int, "messages a batch handler's consumer holds unacknowledged"),
    Setting("OUTBOX_SWEEP_SECONDS", 2.0, float, "how often the relay looks for outbox rows committed elsewhere"),
    Setting("DRIVE_TIMEZONE", "Europe/Paris", str,
            "the zone of the drive's local days and hours (reservations' calendar, the web pages' clocks)"),
)
