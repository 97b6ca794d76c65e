"""Contract suite for the reliability kit (`services/common`): outbox, relay, inbox, bounded retry,
dead-lettering and replay, on SQLite and PostgreSQL, each test in its own RabbitMQ vhost."""

import time
from datetime import UTC, datetime

import eventlet
import pytest
from kombu import Connection
from nameko.standalone.events import get_event_exchange
from sqlalchemy import select

from services.common.deadletters import list_dead_letters, replay
from services.common.envelope import REGISTRY, Event
from services.common.messaging import DEAD_LETTER_QUEUE, dead_letter_topology, declare_topology
from services.common.relay import OutboxPublisher
from services.common.reliability import first_delivery, record_event
from tests.helpers import wait_for
from tests.integration.plumbing.kit import (
    HANDLER_QUEUE,
    SOURCE,
    Behaviour,
    Effect,
    Inbox,
    Outbox,
    PlumbingService,
    Store,
    bind_spy,
    drain_queue,
    publish,
    publish_raw,
    queue_depth,
    thing,
)

pytestmark = pytest.mark.time_limit(30)

CLOSED_PORT_URI = "pyamqp://guest:guest@127.0.0.1:1/"


@pytest.fixture
def start_service(container_factory, config):
    """Start the plumbing service, its queues declared up front (as `drive setup` does)."""
    containers = []

    def start(**overrides):
        Behaviour.reset()
        declare_topology([PlumbingService], config)
        container = container_factory(PlumbingService, {**config, **overrides})
        container.start()
        containers.append(container)
        return container

    yield start
    for container in containers:  # before its database is dropped
        container.kill()


@pytest.fixture
def service(start_service):
    return start_service()


def _commit_state_change(store: Store, label: str) -> str:
    """A state change and its event in one transaction, as a worker's `events.publish` writes them."""
    event = thing(label)
    with store.session() as session, session.begin():
        session.add(Effect(event_id=event.id, label=label))
        record_event(session, Outbox, event)
    return event.id


def _ids(bodies: list[dict]) -> list[str]:
    return [body["id"] for body in bodies]


# --- outbox and relay -----------------------------------------------------------------------------------


def test_outbox_keeps_events_while_broker_unreachable(store, amqp_uri):
    bind_spy(amqp_uri, "spy")
    event_id = _commit_state_change(store, "written during an outage")

    down = OutboxPublisher(store, Outbox, CLOSED_PORT_URI)
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - whatever the transport raises, the row must stay
        down.drain()
    assert time.monotonic() - started < 1.5, "the relay must not retry the broker while holding claimed rows"
    down.close()
    assert down.pending() == 1
    assert store.count(Effect) == 1

    up = OutboxPublisher(store, Outbox, amqp_uri)
    assert up.drain() == 1
    up.close()
    assert up.pending() == 0
    assert _ids(wait_for(lambda: drain_queue(amqp_uri, "spy"), what="the event on the spy queue")) == [event_id]
    assert up.drain() == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_relays_publish_each_row_exactly_once(store, amqp_uri):
    bind_spy(amqp_uri, "spy")
    with store.session() as session, session.begin():
        for n in range(500):
            record_event(session, Outbox, thing(f"row {n}"))
    relays = [OutboxPublisher(store, Outbox, amqp_uri, batch=25) for _ in range(2)]

    threads = [eventlet.spawn(relay.drain) for relay in relays]
    counts = [thread.wait() for thread in threads]
    for relay in relays:
        relay.close()

    assert sum(counts) == 500
    assert min(counts) > 0, f"the relays did not run concurrently: {counts}"
    assert relays[0].pending() == 0
    wait_for(lambda: queue_depth(amqp_uri, "spy") >= 500, what="500 messages on the spy queue")
    ids = _ids(drain_queue(amqp_uri, "spy"))
    with store.session() as session:
        expected = set(session.scalars(select(Outbox.event_id)))
    assert len(ids) == 500
    assert set(ids) == expected


def test_relay_publishes_right_after_commit(start_service, amqp_uri):
    start_service(OUTBOX_SWEEP_SECONDS=60)  # so only the after-commit kick can publish in time
    bind_spy(amqp_uri, "recorded", routing_key="thing_recorded")
    publish(amqp_uri, thing("handled"))

    bodies = wait_for(lambda: drain_queue(amqp_uri, "recorded"), timeout=5, what="the follow-up event")
    assert [body["data"]["label"] for body in bodies] == ["handled"]


def test_relay_sweeps_rows_committed_elsewhere(service, store, amqp_uri):
    bind_spy(amqp_uri, "recorded", routing_key="thing_recorded")
    leftover = REGISTRY.build(SOURCE, "thing_recorded", {"label": "left over"})
    with store.session() as session, session.begin():  # no worker, so no after-commit kick
        record_event(session, Outbox, leftover)

    bodies = wait_for(lambda: drain_queue(amqp_uri, "recorded"), what="the swept event")
    assert _ids(bodies) == [leftover.id]
    wait_for(lambda: store.count(Outbox, sent_at=None) == 0, what="an empty outbox")


def test_relay_marks_only_confirmed_rows(store, amqp_uri):
    bind_spy(amqp_uri, "spy")
    first = _commit_state_change(store, "first")
    with store.session() as session, session.begin():  # its exchange does not exist yet: the broker refuses
        record_event(session, Outbox, Event(type="thing_happened", data={}, source="plumbingnowhere"))
    last = _commit_state_change(store, "last")

    relay = OutboxPublisher(store, Outbox, amqp_uri)
    with pytest.raises(Exception):  # noqa: B017 - the broker closes the channel: 404 NOT_FOUND
        relay.drain()
    assert relay.pending() == 2
    assert _ids(wait_for(lambda: drain_queue(amqp_uri, "spy"), what="the first event")) == [first]

    with Connection(amqp_uri) as conn:
        get_event_exchange("plumbingnowhere", {})(conn.default_channel).declare()
    assert relay.drain() == 2
    relay.close()
    assert relay.pending() == 0
    assert _ids(wait_for(lambda: drain_queue(amqp_uri, "spy"), what="the last event")) == [last]


def test_burst_is_handled_and_relayed_once(service, store, amqp_uri):
    """Workers and the relay share the database: on SQLite they take turns on its one write lock."""
    bind_spy(amqp_uri, "recorded", routing_key="thing_recorded")
    events = [thing(f"burst {n}") for n in range(60)]
    for event in events:
        publish(amqp_uri, event)

    wait_for(lambda: store.count(Effect) == 60, what="60 effects")
    wait_for(lambda: queue_depth(amqp_uri, "recorded") == 60, what="60 follow-up events")
    assert sorted(body["data"]["label"] for body in drain_queue(amqp_uri, "recorded")) == sorted(
        event.data["label"] for event in events)
    assert set(Behaviour.attempts.values()) == {1}
    assert store.count(Outbox, sent_at=None) == 0


# --- inbox ----------------------------------------------------------------------------------------------


def test_duplicate_delivery_has_one_effect(service, store, amqp_uri):
    event = thing("twice")
    publish(amqp_uri, event)
    publish(amqp_uri, event)

    wait_for(lambda: Behaviour.committed[event.id] == 2, what="both deliveries handled")
    assert store.count(Effect, event_id=event.id) == 1
    assert store.count(Inbox, event_id=event.id) == 1
    assert store.count(Outbox) == 1


def test_first_delivery_has_one_winner_under_concurrency(store):
    event = thing("raced")
    results = []

    def claim(hold: float) -> None:
        with store.session() as session, session.begin():
            session.info["consumer"] = "plumbing.on_thing_happened"
            results.append(first_delivery(session, Inbox, event))
            eventlet.sleep(hold)  # keep the transaction open while the others try

    threads = [eventlet.spawn(claim, 0.2 if n == 0 else 0) for n in range(5)]
    for thread in threads:
        thread.wait()

    assert sorted(results) == [False] * 4 + [True]
    assert store.count(Inbox, event_id=event.id) == 1


# --- bounded retry, dead letters, replay ----------------------------------------------------------------


def test_poison_is_dead_lettered_after_max_attempts_then_replayed_once(service, store, amqp_uri):
    bind_spy(amqp_uri, "other-subscriber", routing_key="thing_happened")
    poison = thing("poison", poison=True)
    goods = [thing(f"good {n}") for n in range(3)]
    publish(amqp_uri, poison)
    for good in goods:
        publish(amqp_uri, good)

    wait_for(lambda: queue_depth(amqp_uri, DEAD_LETTER_QUEUE) == 1, what="the poison dead-lettered")
    assert Behaviour.attempts[poison.id] == 3
    wait_for(lambda: store.count(Effect) == 3, what="the good events handled")
    assert store.count(Effect, event_id=poison.id) == 0

    listed = list_dead_letters(amqp_uri)
    assert [(d.event_id, d.queue, d.reason, d.event_type, d.source) for d in listed] == [
        (poison.id, HANDLER_QUEUE, "delivery_limit", "thing_happened", "plumbingtest")]
    assert listed[0].position == 1 and listed[0].count == 1
    assert abs((datetime.now(UTC) - listed[0].first_death_at).total_seconds()) < 60
    assert poison.id in listed[0].preview
    assert queue_depth(amqp_uri, DEAD_LETTER_QUEUE) == 1, "listing must not consume"
    assert len(drain_queue(amqp_uri, "other-subscriber")) == 4

    Behaviour.poison_fails = False
    assert replay(amqp_uri, event_id=poison.id) == 1
    wait_for(lambda: Behaviour.committed[poison.id] == 1, what="the replayed event handled")
    assert store.count(Effect, event_id=poison.id) == 1
    assert Behaviour.attempts[poison.id] == 4
    assert queue_depth(amqp_uri, DEAD_LETTER_QUEUE) == 0
    assert drain_queue(amqp_uri, "other-subscriber") == [], "replay goes only to the queue that failed"


def test_replay_by_id_leaves_the_others_in_order(service, amqp_uri):
    first, second, third = (thing(f"poison {n}", poison=True) for n in range(3))
    for event in (first, second, third):
        publish(amqp_uri, event)
    wait_for(lambda: queue_depth(amqp_uri, DEAD_LETTER_QUEUE) == 3, what="three dead letters")
    before = [d.event_id for d in list_dead_letters(amqp_uri)]
    assert sorted(before) == sorted(e.id for e in (first, second, third))

    Behaviour.poison_fails = False
    assert replay(amqp_uri, event_id=before[1]) == 1
    wait_for(lambda: Behaviour.committed[before[1]] == 1, what="the replayed one handled")
    assert [d.event_id for d in list_dead_letters(amqp_uri)] == [before[0], before[2]]
    assert [d.position for d in list_dead_letters(amqp_uri)] == [1, 2]
    assert replay(amqp_uri) == 2
    wait_for(lambda: queue_depth(amqp_uri, DEAD_LETTER_QUEUE) == 0, what="an empty dead-letter queue")


@pytest.mark.parametrize("malformed", [
    lambda: {"hello": "not an envelope"},
    lambda: {**thing("x").to_message(), "data": {"poison": "maybe"}},
], ids=["not-an-envelope", "data-off-schema"])
def test_malformed_message_is_dead_lettered_at_once(service, store, amqp_uri, malformed):
    publish_raw(amqp_uri, malformed(), serializer="json")
    good = thing("after the malformed one")
    publish(amqp_uri, good)

    wait_for(lambda: queue_depth(amqp_uri, DEAD_LETTER_QUEUE) == 1, what="the malformed message dead-lettered")
    wait_for(lambda: store.count(Effect, event_id=good.id) == 1, what="the next good event handled")
    assert list(Behaviour.attempts) == [good.id], "the handler never sees a malformed message"
    [dead] = list_dead_letters(amqp_uri)
    assert (dead.queue, dead.reason, dead.count) == (HANDLER_QUEUE, "rejected", 1)


@pytest.mark.parametrize("body, content_type", [
    (b"{not json", "application/json"),
    (b"hello", "text/plain"),
], ids=["broken-json", "not-json"])
def test_undecodable_message_is_dead_lettered_at_once(service, store, amqp_uri, body, content_type):
    publish_raw(amqp_uri, body, content_type=content_type, content_encoding="utf-8")
    good = thing("after the undecodable one")
    publish(amqp_uri, good)

    wait_for(lambda: store.count(Effect, event_id=good.id) == 1, what="the next good event handled")
    wait_for(lambda: queue_depth(amqp_uri, DEAD_LETTER_QUEUE) == 1, what="the undecodable message dead-lettered")
    assert list(Behaviour.attempts) == [good.id]
    [dead] = list_dead_letters(amqp_uri)
    assert (dead.queue, dead.reason, dead.count) == (HANDLER_QUEUE, "rejected", 1)


def test_replay_leaves_a_dead_letter_whose_queue_is_gone(amqp_uri):
    exchange, dlq = dead_letter_topology()
    death = {"queue": "evt-plumbingtest-gone--plumbing.on_gone", "reason": "rejected", "count": 1,
             "exchange": "plumbingtest.events", "routing-keys": ["thing_happened"]}
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        conn.Producer().publish(thing("orphan").to_message(), exchange=exchange, declare=[dlq],
                                serializer="json", headers={"x-death": [death]}, retry=False)

    assert replay(amqp_uri) == 0
    [dead] = list_dead_letters(amqp_uri)
    assert (dead.queue, dead.reason, dead.event_type) == (death["queue"], "rejected", "thing_happened")
