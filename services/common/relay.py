"""The outbox relay: publishes committed outbox rows with publisher confirms, right after each commit and
on a periodic sweep, and marks them sent. Several replicas may relay one outbox: rows are claimed with
`FOR UPDATE SKIP LOCKED`, so no row is published by two relays at once. A batch of rows costs a few round
trips, not a few per row: confirms are pipelined (`confirms`), and the batch is marked sent in one UPDATE."""

import logging
from datetime import timedelta
from typing import Any

import eventlet
from eventlet.queue import Empty, LightQueue
from nameko.extensions import DependencyProvider
from sqlalchemy import Text, cast, func, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from services.common.confirms import ConfirmedChannel, Outgoing
from services.common.database import Database
from services.common.envelope import REGISTRY, Event
from services.common.reliability import OutboxMixin, record_event, utcnow
from services.common.settings import amqp_uri, setting

log = logging.getLogger(__name__)


class Events:
    """What a worker sees: `publish(session, type, data)` adds the event to the outbox of that transaction."""

    def __init__(self, source: str, outbox_model: type[OutboxMixin], kick: Any) -> None:
        self.source = source
        self.outbox_model = outbox_model
        self.kick = kick

    def publish(self, session: Session, type_: str, data: dict[str, Any]) -> Event:
        event = REGISTRY.build(self.source, type_, data)
        record_event(session, self.outbox_model, event)
        if not session.info.get("relay_hooked"):
            sa_event.listen(session, "after_commit", lambda _s: self.kick())
            session.info["relay_hooked"] = True
        return event


class OutboxPublisher:
    """Publishes outbox rows of one database; usable inside nameko (the relay) and outside (tools, tests)."""

    def __init__(self, database: Any, outbox_model: type[OutboxMixin], uri: str, batch: int = 200) -> None:
        self.database = database
        self.outbox_model = outbox_model
        self.uri = uri
        self.batch = batch
        self.channel: ConfirmedChannel | None = None

    def _channel(self) -> ConfirmedChannel:
        if self.channel is None:
            self.channel = ConfirmedChannel(self.uri)
        return self.channel

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.channel = None

    def drain(self) -> int:
        """Publish every unsent row; returns how many went out. Raises if the broker is unreachable."""
        total = 0
        while True:
            sent = self._publish_batch()
            total += sent
            if sent < self.batch:
                return total

    def _publish_batch(self) -> int:
        outbox = self.outbox_model.__table__  # Core: columns, not ORM objects
        channel = self._channel()  # before claiming: never wait on the broker while holding rows
        with self.database.session() as session, session.begin():
            # The message as its JSON text, published as is (not decoded and encoded again).
            c = outbox.c
            rows = session.execute(
                select(c.seq, c.event_id, c.exchange, c.routing_key, cast(c.message, Text))
                .where(c.sent_at.is_(None)).order_by(c.seq)
                .limit(self.batch).with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            confirmed, error = channel.publish_all([
                Outgoing(body, exchange, routing_key, event_id) for _, event_id, exchange, routing_key, body in rows])
            if confirmed:
                # One statement for the batch, not one UPDATE per row.
                session.execute(update(outbox).where(c.seq.in_([rows[i][0] for i in confirmed]))
                                .values(sent_at=utcnow()))
        if error is not None:
            self.close()
            raise error
        return len(confirmed)

    def pending(self, older_than_seconds: float = 0) -> int:
        model = self.outbox_model
        cutoff = utcnow() - timedelta(seconds=older_than_seconds)
        with self.database.session() as session:
            return session.scalar(
                select(func.count()).select_from(model)
                .where(model.sent_at.is_(None), model.created_at <= cutoff)
            )


class OutboxRelay(DependencyProvider):
    """`outbox = OutboxRelay(source, Outbox)` in a service: the worker gets `Events`."""

    def __init__(self, source: str, outbox_model: type[OutboxMixin]) -> None:
        self.source = source
        self.outbox_model = outbox_model

    def setup(self) -> None:
        config = self.container.config
        database = next(d for d in self.container.dependencies if isinstance(d, Database))
        self.publisher = OutboxPublisher(database, self.outbox_model, amqp_uri(config))
        self.sweep_seconds = setting(config, "OUTBOX_SWEEP_SECONDS", 2.0, float)
        self.wakeups: LightQueue = LightQueue()
        self.running = False

    def start(self) -> None:
        self.running = True
        self.container.spawn_managed_thread(self._run, identifier="outbox-relay")

    def stop(self) -> None:
        self.running = False
        self.kick()

    def kill(self) -> None:
        self.running = False
        self.kick()

    def kick(self) -> None:
        self.wakeups.put(None)

    def _run(self) -> None:
        failures = 0
        while self.running:
            try:
                self.wakeups.get(timeout=self.sweep_seconds)
            except Empty:
                pass
            while not self.wakeups.empty():  # many commits, one drain
                self.wakeups.get_nowait()
            try:
                self.publisher.drain()
                failures = 0
            except Exception as exc:
                failures += 1
                log.warning("outbox relay could not publish; rows stay for the next sweep",
                            extra={"error": repr(exc), "failures": failures})
                eventlet.sleep(min(0.5 * failures, self.sweep_seconds))
        self.publisher.close()

    def get_dependency(self, worker_ctx: Any) -> Events:
        return Events(self.source, self.outbox_model, self.kick)
