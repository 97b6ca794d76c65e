"""Event handling with bounded attempts and a dead-letter queue, and the broker topology it needs.

nameko's own handler acks a failed message (lost) or, with `requeue_on_error`, redelivers it forever.
Here each handler queue is a quorum queue with a delivery limit: the broker counts the attempts and, past
the limit, moves the message to `drive.dead-letter`, where ops list and replay it (`drive dead-letters`).
A message that can never succeed (it does not fit its schema) goes there at once.
"""

import inspect
import logging
from collections.abc import Callable
from typing import Any

import eventlet
from kombu import Connection, Exchange, Queue
from marshmallow import ValidationError
from nameko.events import BROADCAST, SERVICE_POOL, EventHandler, get_event_exchange
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.messaging import QueueConsumer

from services.common import metrics
from services.common.envelope import REGISTRY, Event
from services.common.errors import PermanentFailure
from services.common.settings import amqp_uri, setting

log = logging.getLogger(__name__)

DEAD_LETTER_EXCHANGE = "drive.dead-letter"
DEAD_LETTER_QUEUE = "drive.dead-letter"
UNDECODABLE = "(undecodable)"  # the event type label of a body that could not be decoded


def dead_letter_topology() -> tuple[Exchange, Queue]:
    exchange = Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True)
    return exchange, Queue(DEAD_LETTER_QUEUE, exchange=exchange, durable=True)


def handler_queue(name: str, exchange: Exchange, routing_key: str, max_attempts: int) -> Queue:
    return Queue(
        name, exchange=exchange, routing_key=routing_key, durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            # The broker counts redeliveries; past the limit it dead-letters instead of requeueing.
            "x-delivery-limit": max(max_attempts - 1, 0),
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        },
    )


def max_attempts(config: dict[str, Any]) -> int:
    return setting(config, "EVENT_MAX_ATTEMPTS")


def retry_delay(attempt: int, config: dict[str, Any]) -> float:
    """Back off a little between attempts, so a passing outage does not burn them all at once."""
    base = setting(config, "EVENT_RETRY_BASE_SECONDS")
    return min(base * (2 ** (attempt - 1)), 5.0)


class DeadLetteringQueueConsumer(QueueConsumer):
    """nameko's consumer logs and *acks* a body it cannot decode (bad JSON, a content type it refuses):
    a silent drop. This one rejects it without requeue, so it lands in the dead-letter queue."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        log.error("dead-lettering undecodable message", extra={"error": repr(exc),
                                                               "content_type": message.content_type})
        self.reject_message(message)
        metrics.of(self.container).event(UNDECODABLE, "dead_lettered")

    def reject_message(self, message: Any) -> None:
        """Reject without requeue (to the dead-letter queue), as `ack_message` and `requeue_message` do: only while
        the message's connection is alive (otherwise the broker has it back already)."""
        if message.channel.connection:
            try:
                message.reject(requeue=False)
            except ConnectionError:  # the connection closed meanwhile: the broker has it back
                pass


class ReliableEventHandler(EventHandler):
    """`@event_handler(source, type)`: the method receives a validated `Event`, never a raw dict."""

    queue_consumer = DeadLetteringQueueConsumer()

    def __init__(self, source_service: str, event_type: str, **kwargs: Any) -> None:
        super().__init__(source_service, event_type, handler_type=SERVICE_POOL,
                         reliable_delivery=True, requeue_on_error=True, **kwargs)

    def setup(self) -> None:
        super().setup()
        config = self.container.config
        self.queue: Queue = handler_queue(self.queue.name, self.queue.exchange, self.event_type, max_attempts(config))
        with Connection(amqp_uri(config)) as conn:
            exchange, queue = dead_letter_topology()
            queue(conn.default_channel).declare()

    def read_or_dead_letter(self, body: Any, message: Any) -> Event | None:
        """The validated event, or None once a message that can never fit is dead-lettered."""
        try:
            return REGISTRY.read(body)
        except PermanentFailure as exc:
            log.error("dead-lettering malformed message", extra={"reason": str(exc), "queue": self.queue.name})
            self.queue_consumer.reject_message(message)
            metrics.of(self.container).event(self.event_type, "dead_lettered")
            return None

    def handle_message(self, body: Any, message: Any) -> None:
        event = self.read_or_dead_letter(body, message)
        if event is not None:
            super().handle_message(event, message)

    def handle_result(self, message: Any, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> tuple:
        instruments = metrics.of(self.container)
        instruments.handled(self.event_type, worker_ctx)
        if exc_info is None:  # the inbox saw it already (`once`): a duplicate, acked with no second effect
            instruments.event(self.event_type, "duplicate" if metrics.duplicates_in(worker_ctx) else "done")
        else:
            instruments.event(self.event_type, failure_outcome(exc_info[0], attempt_of(message),
                                                               max_attempts(self.container.config)))
        return super().handle_result(message, worker_ctx, result, exc_info)

    def handle_message_processed(self, message: Any, result: Any = None, exc_info: Any = None) -> None:
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        attempt = attempt_of(message)
        if is_permanent(exc_info[0]):
            log.error("dead-lettering: permanent failure", extra={"queue": self.queue.name, "attempt": attempt})
            self.queue_consumer.reject_message(message)
            return
        log.warning("handler failed, will retry", extra={"queue": self.queue.name, "attempt": attempt,
                                                         "error": repr(exc_info[1])})
        eventlet.sleep(retry_delay(attempt, self.container.config))
        self.queue_consumer.requeue_message(message)


event_handler = ReliableEventHandler.decorator


class ResumingQueueConsumer(QueueConsumer):
    """The consumer of the broadcast queues: after the broker connection came back (a broker restart, a network cut),
    it tells each handler's `resumed` listeners, since what was broadcast meanwhile went nowhere (the queues are
    deleted with their connection)."""

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kwargs: Any) -> None:
        resumed = self._consumers_ready.ready()  # ready already: this is a reconnection, not the start
        super().on_consume_ready(connection, channel, consumers, **kwargs)
        if resumed:
            log.warning("broadcasts resumed after a broker reconnection: what was said meanwhile is lost")
            for provider in list(self._providers):
                for listener in getattr(provider, "resumed", ()):
                    listener()


class BroadcastEventHandler(EventHandler):
    """`@broadcast_handler(source, type)`: every process of the service hears every event, on a queue of its own
    (exclusive, deleted with its connection), and the method receives the validated `Event`. For what a process
    keeps in memory only (the web service's open streams), never for effects: a process that is down misses what
    was said meanwhile, and whatever it feeds must heal itself from the APIs (a board re-fetches on reconnect).
    `resumed`: callables run after a broker reconnection (the same loss, the process staying up)."""

    queue_consumer = ResumingQueueConsumer()

    def __init__(self, source_service: str, event_type: str, **kwargs: Any) -> None:
        super().__init__(source_service, event_type, handler_type=BROADCAST, reliable_delivery=False, **kwargs)
        self.resumed: list[Callable[[], None]] = []

    def handle_message(self, body: Any, message: Any) -> None:
        try:
            event = REGISTRY.read(body)
        except PermanentFailure as exc:  # nothing to retry on a queue of one process: dropped, and said so
            log.warning("dropping malformed broadcast", extra={"reason": str(exc), "event_type": self.event_type})
            self.queue_consumer.ack_message(message)
            return
        super().handle_message(event, message)


broadcast_handler = BroadcastEventHandler.decorator


def attempt_of(message: Any) -> int:
    """Which delivery of the message this is (1 the first time): the quorum queue counts the earlier ones."""
    return int((message.headers or {}).get("x-delivery-count", 0)) + 1


def is_permanent(exc_type: type[BaseException]) -> bool:
    return issubclass(exc_type, PermanentFailure | ValidationError)


def failure_outcome(exc_type: type[BaseException], attempt: int, attempts_allowed: int) -> str:
    """What becomes of a delivery whose handler raised: dead-lettered at once (permanent) or by the broker once the
    requeue passes the delivery limit (the last attempt), else retried."""
    return "dead_lettered" if is_permanent(exc_type) or attempt >= attempts_allowed else "retried"


def handler_queues(service_cls: type[Any], config: dict[str, Any]) -> list[Queue]:
    """The queues a service consumes, built exactly as its handlers build them."""
    queues = []
    service_name = service_cls.name
    for method_name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, ReliableEventHandler):
                name = f"evt-{entrypoint.source_service}-{entrypoint.event_type}--{service_name}.{method_name}"
                exchange = get_event_exchange(entrypoint.source_service, config)
                queues.append(handler_queue(name, exchange, entrypoint.event_type, max_attempts(config)))
    return queues


def declare_topology(service_classes: list[type[Any]], config: dict[str, Any]) -> list[str]:
    """Declare exchanges, handler queues and the dead-letter queue before any service runs, so an event
    published before its consumer first starts is kept, not confirmed and dropped."""
    declared = []
    with Connection(amqp_uri(config)) as conn:
        channel = conn.default_channel
        _, dlq = dead_letter_topology()
        dlq(channel).declare()
        for service_cls in service_classes:
            get_event_exchange(service_cls.name, config)(channel).declare()
            for queue in handler_queues(service_cls, config):
                queue(channel).declare()
                declared.append(queue.name)
    return declared
