"""Contract suite for `services.common.batching`: events taken in batches keep the guarantees of the ordinary
handler (one effect per event, bounded attempts, then the dead-letter queue), on SQLite and PostgreSQL."""

import eventlet
import pytest

from services.common.batching import batch_event_handler, first_deliveries
from services.common.database import Database
from services.common.envelope import Event
from services.common.messaging import DEAD_LETTER_QUEUE, declare_topology
from services.common.relay import OutboxRelay
from services.common.reliability import first_delivery
from tests.helpers import wait_for
from tests.integration.plumbing.kit import (
    SOURCE,
    Base,
    Behaviour,
    Effect,
    Inbox,
    Outbox,
    drain_queue,
    publish,
    queue_depth,
    thing,
)

pytestmark = pytest.mark.time_limit(40)

BATCH_QUEUE = f"evt-{SOURCE}-thing_happened--batchplumbing.on_things"
batches: list[list[str]] = []


class BatchPlumbingService:
    name = "batchplumbing"
    db = Database(Base)
    outbox = OutboxRelay(SOURCE, Outbox)

    @batch_event_handler(SOURCE, "thing_happened")
    def on_things(self, events: list[Event]) -> None:
        batches.append([event.id for event in events])
        for event in events:
            Behaviour.attempts[event.id] += 1
        if Behaviour.poison_fails and any(event.data["poison"] for event in events):
            raise RuntimeError("poisoned on purpose")
        with self.db.begin():
            for event in first_deliveries(self.db, Inbox, events):
                self.db.add(Effect(event_id=event.id, label=event.data["label"]))
                self.outbox.publish(self.db, "thing_recorded", {"label": event.data["label"]})
        for event in events:
            Behaviour.committed[event.id] += 1


@pytest.fixture
def service(container_factory, config):
    Behaviour.reset()
    batches.clear()
    # A long linger: what the test publishes in a row lands in one batch.
    config = {**config, "EVENT_BATCH_LINGER_SECONDS": 0.5, "EVENT_BATCH_SIZE": 50}
    declare_topology([BatchPlumbingService], config)
    container = container_factory(BatchPlumbingService, config)
    container.start()
    yield container
    container.kill()  # before its database is dropped


def test_a_poisoned_event_is_dead_lettered_alone_and_its_batch_mates_take_effect_once(service, store, amqp_uri):
    goods = [thing(f"good {n}") for n in range(4)]
    poison = thing("poison", poison=True)
    for event in (goods[0], goods[1], poison, goods[2], goods[3]):
        publish(amqp_uri, event)

    wait_for(lambda: queue_depth(amqp_uri, DEAD_LETTER_QUEUE) == 1, timeout=20, what="the poison dead-lettered")
    assert any(len(batch) == 5 for batch in batches), f"the events were not taken as one batch: {batches}"
    wait_for(lambda: store.count(Effect) == 4, what="the good events handled")
    assert all(store.count(Effect, event_id=good.id) == 1 for good in goods)
    assert store.count(Effect, event_id=poison.id) == 0
    dead = drain_queue(amqp_uri, DEAD_LETTER_QUEUE)
    assert [body["id"] for body in dead] == [poison.id]
    # Bounded: 3 deliveries (EVENT_MAX_ATTEMPTS), each tried in a batch and then on its own.
    assert Behaviour.attempts[poison.id] <= 2 * 3
    eventlet.sleep(0.5)
    assert store.count(Effect) == 4 and store.count(Inbox) == 4
    assert store.count(Outbox) == 4  # one follow-up event per good event, none for the poison


def test_a_duplicate_in_a_batch_and_across_batches_has_one_effect(service, store, amqp_uri):
    twice, other = thing("twice"), thing("other")
    for event in (twice, other, twice):
        publish(amqp_uri, event)
    wait_for(lambda: Behaviour.committed[twice.id] == 2, what="the first batch handled")
    assert [len(batch) for batch in batches] == [3]
    publish(amqp_uri, twice)  # again, in a batch of its own
    wait_for(lambda: Behaviour.committed[twice.id] == 3, what="the second batch handled")

    assert store.count(Effect, event_id=twice.id) == 1
    assert store.count(Effect, event_id=other.id) == 1
    assert store.count(Inbox) == 2
    assert store.count(Outbox) == 2
    wait_for(lambda: queue_depth(amqp_uri, BATCH_QUEUE) == 0, what="every message acked")


def test_first_deliveries_keeps_order_and_new_events_only(store):
    first, second, third = (thing(f"n{n}") for n in range(3))
    with store.session() as session, session.begin():
        session.info["consumer"] = "batchplumbing.on_things"
        assert first_delivery(session, Inbox, second)
    with store.session() as session, session.begin():
        session.info["consumer"] = "batchplumbing.on_things"
        fresh = first_deliveries(session, Inbox, [third, first, second, third])
    assert [event.id for event in fresh] == [third.id, first.id]
    assert store.count(Inbox) == 3


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_batches_claim_each_event_once(store):
    events = [thing(f"raced {n}") for n in range(20)]
    claimed: list[str] = []

    def claim(subset: list[Event]) -> None:
        with store.session() as session, session.begin():
            session.info["consumer"] = "batchplumbing.on_things"
            claimed.extend(event.id for event in first_deliveries(session, Inbox, subset))
            eventlet.sleep(0.1)  # keep the transaction open while the others try

    threads = [eventlet.spawn(claim, events[n:] + events[:n]) for n in (0, 7, 13)]  # overlapping, rotated
    for thread in threads:
        thread.wait()
    assert sorted(claimed) == sorted(event.id for event in events)
    assert store.count(Inbox) == 20
