"""Timers whose interval comes from configuration (nameko's takes a constant at import time), and that stop
cleanly however many times they are asked to.

nameko's `Timer.stop` sends on one `Event`; a second stop (`nameko run` stops the container once per signal: a
terminal's Ctrl-C then a SIGTERM) re-sends it and raises `AssertionError: Trying to re-send() an
already-triggered event`, in the middle of the container's stop. Here stop and kill are idempotent."""

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

    def stop(self) -> None:
        # A tick in progress finishes (its transaction commits or rolls back on its own); no new tick starts.
        self._no_new_tick()
        if self.gt is not None:
            self.gt.wait()

    def kill(self) -> None:
        self._no_new_tick()
        if self.gt is not None:
            self.gt.kill()

    def _no_new_tick(self) -> None:
        if not self.should_stop.ready():  # sent once, however many stops and kills follow
            self.should_stop.send(True)


timer = ConfiguredTimer.decorator
