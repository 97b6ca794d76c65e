"""Reading configuration: nameko's config dict first, the environment second, then the default."""

import os
from collections.abc import Mapping
from typing import Any


def setting(config: Mapping[str, Any], key: str, default: Any = None, cast: type = str) -> Any:
    """One value of configuration, cast to the type the caller wants."""
    value = config.get(key) if config else None
    if value is None:
        value = os.environ.get(key)
    if value is None or value == "":
        return default
    if cast is bool and isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return cast(value)


def amqp_uri(config: Mapping[str, Any] | None = None) -> str:
    return setting(config or {}, "AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/")
