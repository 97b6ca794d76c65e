"""The open boards of this process, by pickup point: an event pokes the streams of its point, each stream then
tells its page to re-fetch (the reservations API stays the truth; a poke carries no data to get wrong)."""

import json
import logging
from collections.abc import Iterator
from typing import Any

from eventlet.queue import Empty, LightQueue
from nameko.extensions import DependencyProvider

from services.common.messaging import BroadcastEventHandler

log = logging.getLogger(__name__)
CLOSE = None  # what a stream's queue receives when the process stops: the stream ends, the browser reconnects


class BoardHub(DependencyProvider):
    """Shared by every worker of the process (one hub per process: a broadcast handler feeds it)."""

    def setup(self) -> None:
        self.streams: dict[str, set[LightQueue]] = {}
        # After a broker reconnection, every open board re-fetches: the pokes of the outage went nowhere.
        for entrypoint in getattr(getattr(self, "container", None), "entrypoints", ()):
            if isinstance(entrypoint, BroadcastEventHandler):
                entrypoint.resumed.append(self.poke_all)

    def get_dependency(self, worker_ctx: Any) -> "BoardHub":
        return self

    def poke(self, point_id: str, event_type: str) -> int:
        """Tell every open board of `point_id` that its sheet changed; returns how many were told."""
        queues = self.streams.get(point_id, set())
        for queue in list(queues):
            queue.put(event_type)
        return len(queues)

    def poke_all(self, why: str = "resumed") -> int:
        return sum(self.poke(point_id, why) for point_id in list(self.streams))

    def open_boards(self) -> int:
        return sum(len(queues) for queues in self.streams.values())

    def stream(self, point_id: str, heartbeat: float, retry_ms: int) -> Iterator[bytes]:
        """The server-sent events of one open board. It runs in the connection's green thread (eventlet's WSGI
        server iterates it after the worker returned the response), not in the worker pool: an hour-long board
        holds no worker. It ends when the browser goes away (the next write fails: GeneratorExit here) or when
        the process stops."""
        queue: LightQueue = LightQueue()
        self.streams.setdefault(point_id, set()).add(queue)
        try:
            # `retry:` sets the browser's pause before it reconnects; the first event tells the page that the
            # stream is open, so that it re-fetches what it may have missed while it was not.
            yield f"retry: {retry_ms}\n\nevent: hello\ndata: {{}}\n\n".encode()
            while True:
                try:
                    what = queue.get(timeout=heartbeat)
                except Empty:
                    yield b": heartbeat\n\n"
                    continue
                if what is CLOSE:
                    return
                yield f"event: changed\ndata: {json.dumps({'event': what})}\n\n".encode()
        finally:
            queues = self.streams.get(point_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    self.streams.pop(point_id, None)

    def stop(self) -> None:
        for queues in self.streams.values():
            for queue in queues:
                queue.put(CLOSE)
