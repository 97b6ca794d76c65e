"""A tiny service built only from the kit in `services/common`, and the helpers its contract suites use (their
fixtures: `conftest.py` beside)."""

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Connection, Queue
from marshmallow import Schema, fields
from nameko.standalone.events import get_event_exchange
from sqlalchemy import String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from services.common.database import Database, make_engine
from services.common.envelope import REGISTRY, Event
from services.common.messaging import event_handler
from services.common.relay import OutboxRelay
from services.common.reliability import InboxMixin, OutboxMixin, first_delivery

SOURCE = "plumbingtest"
HANDLER_QUEUE = f"evt-{SOURCE}-thing_happened--plumbing.on_thing_happened"


class ThingSchema(Schema):
    label = fields.String(required=True)
    poison = fields.Boolean(load_default=False, dump_default=False)


TEST_EVENT_TYPES = {"thing_happened": "test only: something happened",
                    "thing_recorded": "test only: the plumbing service recorded it"}


@contextmanager
def plumbing_event_types() -> Iterator[None]:
    """The test event types exist only while a plumbing test runs: the catalogue tests (AsyncAPI) compare
    the process-wide REGISTRY with the documented events."""
    keys = [(SOURCE, type_) for type_ in TEST_EVENT_TYPES]
    for type_, summary in TEST_EVENT_TYPES.items():
        REGISTRY.register(SOURCE, type_, ThingSchema, summary)
    try:
        yield
    finally:
        for key in keys:
            REGISTRY._types.pop(key, None)  # EventRegistry has no public unregister


class Base(DeclarativeBase):
    pass


class Outbox(OutboxMixin, Base):
    pass


class Inbox(InboxMixin, Base):
    pass


class Effect(Base):
    __tablename__ = "effect"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    label: Mapped[str] = mapped_column(String(100))


class Behaviour:
    """What the handler saw and whether poison still fails; reset by each test."""

    attempts: Counter = Counter()
    committed: Counter = Counter()
    poison_fails = True

    @classmethod
    def reset(cls) -> None:
        cls.attempts = Counter()
        cls.committed = Counter()
        cls.poison_fails = True


class PlumbingService:
    name = "plumbing"
    db = Database(Base)
    outbox = OutboxRelay(SOURCE, Outbox)

    @event_handler(SOURCE, "thing_happened")
    def on_thing_happened(self, event: Event) -> None:
        Behaviour.attempts[event.id] += 1
        if event.data["poison"] and Behaviour.poison_fails:
            raise RuntimeError("poisoned on purpose")
        with self.db.begin():
            if first_delivery(self.db, Inbox, event):
                self.db.add(Effect(event_id=event.id, label=event.data["label"]))
                self.outbox.publish(self.db, "thing_recorded", {"label": event.data["label"]})
        Behaviour.committed[event.id] += 1


class Store:
    """The `database` an OutboxPublisher needs, outside a container."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url, pool_size=12)
        self.make_session = sessionmaker(bind=self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self.make_session()
        try:
            yield session
        finally:
            session.close()

    def count(self, model: type, **where: Any) -> int:
        with self.session() as session:
            query = select(func.count()).select_from(model).filter_by(**where)
            return session.scalar(query)


def thing(label: str, poison: bool = False) -> Event:
    return REGISTRY.build(SOURCE, "thing_happened", {"label": label, "poison": poison})


def publish_raw(amqp_uri: str, body: Any, routing_key: str = "thing_happened", **kwargs: Any) -> None:
    """Into the broker as the source service would, with a publisher confirm."""
    exchange = get_event_exchange(SOURCE, {})
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        conn.Producer().publish(body, exchange=exchange, routing_key=routing_key, declare=[exchange],
                                delivery_mode=2, retry=False, **kwargs)


def publish(amqp_uri: str, event: Event) -> None:
    publish_raw(amqp_uri, event.to_message(), routing_key=event.type, serializer="json", message_id=event.id)


def bind_spy(amqp_uri: str, name: str, routing_key: str = "#") -> None:
    """A plain durable queue on the source exchange, to count what was published."""
    exchange = get_event_exchange(SOURCE, {})
    with Connection(amqp_uri) as conn:
        Queue(name, exchange=exchange, routing_key=routing_key, durable=True)(conn.default_channel).declare()


def drain_queue(amqp_uri: str, name: str) -> list[dict[str, Any]]:
    """Consume and ack everything now on the queue; returns the decoded bodies."""
    bodies = []
    with Connection(amqp_uri) as conn:
        queue = Queue(name)(conn.default_channel)
        while (message := queue.get(no_ack=True, accept=["json"])) is not None:
            bodies.append(message.decode())
    return bodies


def queue_depth(amqp_uri: str, name: str) -> int:
    with Connection(amqp_uri) as conn:
        _, depth, _ = conn.default_channel.queue_declare(queue=name, passive=True)
    return depth
