"""Timers whose interval comes from configuration (nameko's takes a constant at import time)."""

from typing import Any

from nameko.timer import Timer

from services.common.settings import setting


class ConfiguredTimer(Timer):
    def __init__(self, interval_key: str, default_seconds: float, **kwargs: Any) -> None:
        super().__init__(interval=default_seconds, **kwargs)
        self.interval_key = interval_key
        self.default_seconds = default_seconds

    def setup(self) -> None:
        super().setup()
        self.interval = setting(self.container.config, self.interval_key, self.default_seconds, float)


timer = ConfiguredTimer.decorator
