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
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import eventlet
from nameko.exceptions import ContainerBeingKilled
from sqlalchemy.orm import Session

from services.common import clock, metrics
from services.common.database import insert_new
from services.common.envelope import Event
from services.common.messaging import DeadLetteringQueueConsumer, ReliableEventHandler
from services.common.reliability import InboxMixin, note_duplicates
from services.common.settings import setting

log = logging.getLogger(__name__)


class BatchQueueConsumer(DeadLetteringQueueConsumer):
    """A connection of its own (nameko shares one consumer per class), whose prefetch holds whole batches."""

    @property
    def prefetch_count(self) -> int:
        return setting(self.container.config, "EVENT_BATCH_PREFETCH")


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
            for _, message in batch:
                self.queue_consumer.ack_message(message)
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
