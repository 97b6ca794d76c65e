"""The outbox relay: publishes committed outbox rows with publisher confirms, right after each commit and
on a periodic sweep, and marks them sent. Several replicas may relay one outbox: rows are claimed with
`FOR UPDATE SKIP LOCKED`, so no row is published by two relays at once."""

import logging
from datetime import timedelta
from typing import Any

import eventlet
from eventlet.queue import Empty, LightQueue
from kombu import Connection, Exchange
from nameko.extensions import DependencyProvider
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
        self.connection: Connection | None = None
        self.producer: Any = None

    def _producer(self) -> Any:
        if self.producer is None:
            connection = Connection(self.uri, transport_options={"confirm_publish": True}, connect_timeout=5)
            try:
                # One attempt, no kombu retry loop (~6 s of sleeps): the caller claims rows only after this.
                connection.ensure_connection(max_retries=0)
            except Exception:
                connection.release()
                raise
            self.connection = connection
            self.producer = connection.Producer()
        return self.producer

    def close(self) -> None:
        if self.connection is not None:
            self.connection.release()
        self.connection = self.producer = None

    def drain(self) -> int:
        """Publish every unsent row; returns how many went out. Raises if the broker is unreachable."""
        total = 0
        while True:
            sent = self._publish_batch()
            total += sent
            if sent < self.batch:
                return total

    def _publish_batch(self) -> int:
        model = self.outbox_model
        error: Exception | None = None
        published = 0
        producer = self._producer()  # before claiming: never wait on the broker while holding rows
        with self.database.session() as session, session.begin():
            rows = session.scalars(
                select(model).where(model.sent_at.is_(None)).order_by(model.seq)
                .limit(self.batch).with_for_update(skip_locked=True)
            ).all()
            try:
                for row in rows:
                    producer.publish(
                        row.message, exchange=Exchange(row.exchange, type="topic", durable=True),
                        routing_key=row.routing_key, serializer="json", delivery_mode=2,
                        message_id=row.event_id, retry=False,
                    )
                    published += 1
            except Exception as exc:  # the broker went away: keep what was confirmed, retry the rest
                error = exc
                self.close()
            now = utcnow()
            for row in rows[:published]:
                row.sent_at = now
        if error is not None:
            raise error
        return published

    def pending(self, older_than_seconds: float = 0) -> int:
        model = self.outbox_model
        cutoff = utcnow() - timedelta(seconds=older_than_seconds)
        with self.database.session() as session:
            return session.scalar(
                select(func.count()).select_from(model)
                .where(model.sent_at.is_(None), model.created_at <= cutoff)
            )


class OutboxRelay(DependencyProvider):
    """`events = OutboxRelay(source, Outbox)` in a service: the worker gets `Events`."""

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
