"""Taking events in batches: a variant of `services.common.messaging.event_handler` for high-volume events.

nameko runs one worker per message: one transaction, one commit and a dozen round trips each, which caps a
process near a few hundred events a second (docs/stack-notes.md). `@batch_event_handler(source, type)` hands the
method a list of validated events, in their arrival order (up to EVENT_BATCH_SIZE, or whatever arrived within
EVENT_BATCH_LINGER_SECONDS), and acks them all once it returned, so the method commits inside (idem). If a
batch fails, each of its events is tried again on its own through the ordinary path: bounded attempts with
back-off, then the dead-letter queue, so one bad event never takes its batch-mates down with it. Same queue and
topology as the ordinary handler: switching a handler between the two needs no queue change.
"""

import logging
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import eventlet
from amqp.exceptions import ConnectionError as AmqpConnectionError
from eventlet.semaphore import Semaphore
from nameko.exceptions import ContainerBeingKilled
from sqlalchemy.orm import Session

from services.common import clock, metrics
from services.common.database import insert_new
from services.common.envelope import Event
from services.common.messaging import DeadLetteringQueueConsumer, ReliableEventHandler
from services.common.reliability import InboxMixin, note_duplicates
from services.common.settings import setting

log = logging.getLogger(__name__)


ACKED, SETTLED = "acked", "settled"  # finished: to ack (a multiple-ack may cover it), or acked/rejected/requeued alone


class ChannelAcks:
    """What one channel delivered and what of it is finished, so that one `basic_ack(multiple=True)` acks a whole
    batch: a multiple-ack acks every unacked delivery up to its tag, so it may only reach the highest tag below which
    every delivery of the channel is finished. Several batches are in flight at once, and retries and the
    dead-letter path finish messages one by one on the same channel: a multiple-ack over an unfinished message
    would lose it on a crash, and an ack of a message already acked closes the channel (PRECONDITION_FAILED).

    A batch finished while an earlier delivery is not is acked message by message at once (as before), so a crash
    redelivers exactly the unfinished messages. One writer at a time (`lock`): the frames of a channel leave in the
    order their tags were settled here, so a multiple-ack never overtakes a reject it covers."""

    def __init__(self) -> None:
        self.delivered: deque[Any] = deque()  # messages in delivery order, down to the first unfinished one
        self.finished: dict[int, str] = {}  # delivery tag → ACKED or SETTLED, for those still in `delivered`
        self.lock = Semaphore()

    def delivered_now(self, message: Any) -> None:
        """Called by the consumer's thread, in delivery order, before anything can finish the message."""
        self.delivered.append(message)

    def finish(self, messages: Iterable[Any], how: str = "ack") -> None:
        """`how`: "ack", "reject" (to the dead-letter queue) or "requeue"."""
        messages = list(messages)
        with self.lock:
            if not messages or not messages[0].channel.connection:
                return  # the connection is gone: the broker has every unacked message of the channel back
            for message in messages:
                if how == "reject":
                    message.reject(requeue=False)
                elif how == "requeue":
                    message.requeue()
                self.finished[message.delivery_tag] = ACKED if how == "ack" else SETTLED
            highest = None
            while self.delivered and self.delivered[0].delivery_tag in self.finished:
                message = self.delivered.popleft()
                if self.finished.pop(message.delivery_tag) == ACKED:
                    highest = message
            if highest is not None:
                highest.ack(multiple=True)
            if how == "ack":  # behind an unfinished delivery: alone, now (a crash must not redeliver them)
                for message in messages:
                    if self.finished.get(message.delivery_tag) == ACKED:
                        message.ack()
                        self.finished[message.delivery_tag] = SETTLED


class BatchQueueConsumer(DeadLetteringQueueConsumer):
    """A connection of its own (nameko shares one consumer per class), whose prefetch holds whole batches, and whose
    messages are acked a batch at a time (`ChannelAcks`). Every message it delivers is finished through it
    (`ack_message`, `ack_messages`, `reject_message`, `requeue_message`)."""

    def __init__(self) -> None:
        super().__init__()
        self._acks: weakref.WeakKeyDictionary[Any, ChannelAcks] = weakref.WeakKeyDictionary()  # per channel

    @property
    def prefetch_count(self) -> int:
        return setting(self.container.config, "EVENT_BATCH_PREFETCH")

    def _acks_of(self, message: Any) -> ChannelAcks:
        acks = self._acks.get(message.channel)
        if acks is None:  # a new channel: the first delivery after (re)connecting
            acks = self._acks[message.channel] = ChannelAcks()
        return acks

    def handle_message(self, provider: Any, body: Any, message: Any) -> None:
        # In the consumer's thread, not a green thread per message: a batch handler only reads the message and
        # adds it to its batch (a full batch waits here for a free worker: back pressure, as before).
        self._acks_of(message).delivered_now(message)
        provider.handle_message(body, message)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._acks_of(message).delivered_now(message)
        super().on_decode_error(message, exc)

    def _finish(self, messages: list[Any], how: str) -> None:
        by_channel: dict[Any, list[Any]] = {}  # one, unless the connection came back while the batch filled
        for message in messages:
            by_channel.setdefault(message.channel, []).append(message)
        for of_channel in by_channel.values():
            try:
                self._acks_of(of_channel[0]).finish(of_channel, how)
            except (AmqpConnectionError, ConnectionError):  # the connection closed meanwhile: the broker has them
                pass

    def ack_messages(self, messages: list[Any]) -> None:
        """A batch's messages, in delivery order: one `basic_ack` when nothing delivered before them is unfinished."""
        self._finish(messages, "ack")

    def ack_message(self, message: Any) -> None:
        self._finish([message], "ack")

    def reject_message(self, message: Any) -> None:
        self._finish([message], "reject")

    def requeue_message(self, message: Any) -> None:
        self._finish([message], "requeue")


class BatchEventHandler(ReliableEventHandler):
    queue_consumer = BatchQueueConsumer()

    def setup(self) -> None:
        super().setup()
        self.size = setting(self.container.config, "EVENT_BATCH_SIZE")
        self.linger = setting(self.container.config, "EVENT_BATCH_LINGER_SECONDS")
        self.pending: list[tuple[Event, Any]] = []
        self.lingering = False

    def handle_message(self, body: Any, message: Any) -> None:
        event = self.read_or_dead_letter(body, message)
        if event is None:
            return
        self.pending.append((event, message))
        if len(self.pending) >= self.size:
            self._flush()
        elif not self.lingering:
            self.lingering = True
            self.container.spawn_managed_thread(self._linger, identifier=f"{self.method_name}-batch")

    def _linger(self) -> None:
        eventlet.sleep(self.linger)
        self.lingering = False
        self._flush()

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            # Blocks while every worker is busy: the consumer then stops taking messages (back pressure).
            self.container.spawn_worker(self, ([event for event, _ in batch],), {},
                                        handle_result=partial(self._batch_done, batch))
        except ContainerBeingKilled:
            for _, message in batch:
                self.queue_consumer.requeue_message(message)

    def _batch_done(self, batch: list, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> tuple:
        instruments = metrics.of(self.container)
        instruments.handled(self.event_type, worker_ctx)
        if exc_info is None:
            duplicates = min(metrics.duplicates_in(worker_ctx), len(batch))
            instruments.event(self.event_type, "duplicate", duplicates)
            instruments.event(self.event_type, "done", len(batch) - duplicates)
        else:  # each goes again on its own, and is counted again there
            instruments.event(self.event_type, "retried", len(batch))
        if exc_info is None:
            self.queue_consumer.ack_messages([message for _, message in batch])
        else:
            log.warning("batch failed: its events go one by one", extra={"queue": self.queue.name,
                                                                         "events": len(batch),
                                                                         "error": repr(exc_info[1])})
            # From a managed thread: this worker still holds its slot, and the pool may be full.
            self.container.spawn_managed_thread(partial(self._one_by_one, batch))
        return result, exc_info

    def _one_by_one(self, batch: list) -> None:
        for event, message in batch:
            try:
                self.container.spawn_worker(self, ([event],), {}, context_data=self.unpack_message_headers(message),
                                            handle_result=partial(self.handle_result, message))
            except ContainerBeingKilled:
                self.queue_consumer.requeue_message(message)


batch_event_handler = BatchEventHandler.decorator


def first_deliveries(session: Session, inbox_model: type[InboxMixin], events: list[Event],
                     consumer: str | None = None) -> list[Event]:
    """`services.common.reliability.first_delivery` for a batch, in one statement: the events this consumer has
    not processed yet, in their order (a redelivered batch keeps only what is new; an event that came twice
    in the batch is kept once). Concurrent claims of one event: the second waits for the first to commit."""
    if not events:
        return []
    consumer = consumer or session.info.get("consumer", "unknown")
    now = clock.now()
    # In id order: two batches that share events (redeliveries) take the inbox keys in the same order, so
    # they wait for each other rather than deadlock.
    rows = [{"consumer": consumer, "event_id": event_id, "processed_at": now}
            for event_id in sorted({e.id for e in events})]
    inbox = inbox_model.__table__  # Core, not the ORM's bulk insert: the same statement, a fraction of the CPU
    claimed = set(session.scalars(insert_new(session, inbox).returning(inbox.c.event_id), rows))
    fresh = []
    for event in events:
        if event.id in claimed:
            claimed.discard(event.id)
            fresh.append(event)
    note_duplicates(session, len(events) - len(fresh))
    return fresh


@contextmanager
def once_each(session: Session, inbox_model: type[InboxMixin], events: list[Event]) -> Iterator[list[Event]]:
    """`services.common.reliability.once` for a batch: yields the events this consumer has not processed yet,
    in their order (`first_deliveries`); their effects and inbox keys commit together when the block ends."""
    with session.begin():
        yield first_deliveries(session, inbox_model, events)
