"""Timers whose interval comes from configuration (nameko's takes a constant at import time)."""

from typing import Any

from nameko.timer import Timer

from services.common.settings import setting


class ConfiguredTimer(Timer):
    """`@timer("EXPIRY_CHECK_SECONDS")`: the interval is that setting's, read when the container sets up."""

    def __init__(self, interval_key: str, **kwargs: Any) -> None:
        super().__init__(interval=None, **kwargs)
        self.interval_key = interval_key

    def setup(self) -> None:
        super().setup()
        self.interval = setting(self.container.config, self.interval_key)


timer = ConfiguredTimer.decorator
