"""Timers whose interval comes from configuration (nameko's takes a constant at import time), and that stop
cleanly however many times they are asked to.

nameko's `Timer.stop` sends on one `Event`; a second stop (`nameko run` stops the container once per signal: a
terminal's Ctrl-C then a SIGTERM) re-sends it and raises `AssertionError: Trying to re-send() an
already-triggered event`, in the middle of the container's stop. Here stop and kill are idempotent."""

import time
from collections.abc import Callable
from typing import Any

from eventlet import Timeout
from eventlet.event import Event
from nameko.extensions import DependencyProvider
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
        self.alarm = Event()  # sent by a stop or a `wake`: the wait for the next tick ends at once

    def wake(self) -> None:
        """The next tick starts now (or as soon as the one in progress ends), not at its interval; wakes that come
        before it starts make one tick."""
        if not self.alarm.ready():
            self.alarm.send(True)

    def _run(self) -> None:
        # nameko's loop (ticks at start + n × interval, or at once when a tick took longer), waiting on the alarm.
        start, count = time.time(), 0 if self.eager else 1
        while not self.should_stop.ready():
            with Timeout(max(start + count * self.interval - time.time(), 0), exception=False):
                self.alarm.wait()
            if self.should_stop.ready():
                break
            woken = self.alarm.ready()
            if woken:
                self.alarm.reset()
            self.handle_timer_tick()
            self.worker_complete.wait()
            self.worker_complete.reset()
            # Woken: the next timed tick is the next point of the grid, not a catch-up of those passed meanwhile.
            count = max(count + 1, int((time.time() - start) / self.interval) + 1) if woken and self.interval > 0 \
                else count + 1

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
            self.wake()


timer = ConfiguredTimer.decorator


class TimerWake(DependencyProvider):
    """`send_now = TimerWake("send_due")`: `self.send_now()` wakes that `@timer` method of the service
    (`ConfiguredTimer.wake`), e.g. once work for it was committed, rather than leaving it to its next tick."""

    def __init__(self, method_name: str) -> None:
        self.method_name = method_name

    def setup(self) -> None:
        timers = [e for e in self.container.entrypoints
                  if isinstance(e, ConfiguredTimer) and e.method_name == self.method_name]
        if not timers:
            raise TypeError(f"no @timer method {self.method_name} on {self.container.service_name}")
        self.timer = timers[0]

    def get_dependency(self, worker_ctx: Any) -> Callable[[], None]:
        return self.timer.wake
