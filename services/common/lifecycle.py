"""How a service process starts and stops: the container `nameko run` builds (`SERVICE_CONTAINER_CLS` in each
`config.yaml`).

`nameko run` stops the container once per signal it gets (SIGTERM from Kubernetes or `docker stop`, SIGINT from a
terminal), and a stop that arrives while the container is still starting races the start. nameko's container
runs each stop in full, so a second one stops every extension a second time: a timer re-sends its stop event
(`AssertionError: Trying to re-send() an already-triggered event`), a queue consumer waits forever for a
consumer already cancelled, and the process hangs until it is killed. Here the first stop does the work and any
later one waits for it; a stop during the start waits (a few seconds at most) for the start to finish, so that
it stops what started rather than what is half started.

The graceful stop itself is nameko's: entrypoints stop taking work (HTTP routes unregister, consumers are
cancelled, timers start no new tick), the workers in progress finish (an HTTP request gets its answer, a
handler commits and acks), then the dependencies stop (the outbox relay publishes what they committed), and
the broker connection closes: whatever was delivered and not acked goes back to its queue.
"""

import logging
from typing import Any

from eventlet import Timeout
from eventlet.event import Event
from nameko.containers import ServiceContainer

log = logging.getLogger(__name__)
START_WAIT_SECONDS = 5.0  # a start blocked longer (the broker does not answer) is stopped as it is


class DriveContainer(ServiceContainer):
    """nameko's container, with a stop that runs once however many times it is asked (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start_done = Event()
        self._stop_claimed = False

    def start(self) -> None:
        try:
            super().start()
        finally:
            self._start_done.send(None)

    def stop(self) -> None:
        if self._stop_claimed:
            log.debug("a stop is already under way: waiting for it")
            self._wait_died()
            return
        self._stop_claimed = True
        if self.started and not self._start_done.ready():
            with Timeout(START_WAIT_SECONDS, exception=False):
                self._start_done.wait()
        super().stop()

    def kill(self, exc_info: Any = None) -> None:
        self._stop_claimed = True
        super().kill(exc_info)

    def _wait_died(self) -> None:
        try:
            self._died.wait()
        except Exception:  # noqa: BLE001 - the container died with an error: the first stop's caller sees it
            pass
