"""One ack per batch (`services.common.batching.ChannelAcks`), against the real broker: a multiple-ack reaches only
the highest tag below which every delivery of the channel is finished; a batch finished behind an unfinished one is
acked message by message; a crash redelivers exactly the unfinished messages; no delivery is ever acked twice (the
broker would close the channel: PRECONDITION_FAILED)."""

import eventlet
import pytest
from eventlet.event import Event as GreenEvent
from kombu import Connection, Consumer, Exchange

from services.common.batching import ChannelAcks, batch_event_handler
from services.common.database import Database
from services.common.envelope import Event
from services.common.messaging import DEAD_LETTER_QUEUE, dead_letter_topology, declare_topology, handler_queue
from services.common.reliability import first_delivery
from tests.helpers import wait_for
from tests.integration.plumbing.kit import SOURCE, Base, Behaviour, Effect, Inbox, drain_queue, publish, thing

pytestmark = pytest.mark.time_limit(40)

QUEUE = "acks-under-test"


def _deliveries(conn: Connection, count: int) -> tuple[list, list]:
    """`count` messages taken on one channel (prefetch: all of them), none finished; and the basic_ack calls the
    channel makes from then on, as (delivery tag, multiple)."""
    channel = conn.channel()
    taken: list = []
    consumer = Consumer(channel, queues=[handler_queue(QUEUE, Exchange(""), QUEUE, 5)], accept=["json"],
                        callbacks=[lambda body, message: taken.append(message)])
    consumer.qos(prefetch_count=count)
    consumer.consume()
    while len(taken) < count:
        conn.drain_events(timeout=5)
    acks: list[tuple[int, bool]] = []
    basic_ack = channel.basic_ack

    def recorded(delivery_tag: int, multiple: bool = False) -> None:
        acks.append((delivery_tag, multiple))
        basic_ack(delivery_tag, multiple=multiple)

    channel.basic_ack = recorded
    return taken, acks


@pytest.fixture
def ten(rabbit_config):
    """Ten messages, bodies 1 to 10, on a quorum handler queue with its dead-letter queue."""
    uri = rabbit_config["AMQP_URI"]
    with Connection(uri) as conn:
        _, dlq = dead_letter_topology()
        dlq(conn.default_channel).declare()
        handler_queue(QUEUE, Exchange(""), QUEUE, 5)(conn.default_channel).declare()
        producer = conn.Producer()
        for n in range(1, 11):
            producer.publish(n, routing_key=QUEUE, serializer="json", delivery_mode=2)
    return uri


def _tracking(taken: list) -> ChannelAcks:
    """A tracker that knows these deliveries, as the consumer tells it of each on arrival."""
    channel_acks = ChannelAcks()
    for message in taken:
        channel_acks.delivered_now(message)
    return channel_acks


def _still_open(channel) -> None:
    """A synchronous call (it waits for qos-ok): it fails if the broker closed the channel, as it does on an ack of
    an unknown or already acked tag (PRECONDITION_FAILED)."""
    channel.basic_qos(0, 10, False)


def _left_on_queue(uri: str) -> list[int]:
    return sorted(drain_queue(uri, QUEUE))


def test_a_crash_with_an_earlier_batch_unfinished_redelivers_exactly_its_messages(ten):
    with Connection(ten) as conn:
        taken, acks = _deliveries(conn, 10)
        channel_acks = _tracking(taken)
        first, second, poison, third = taken[0:3], taken[3:6], taken[6], taken[7:10]
        channel_acks.finish(second)  # behind the first batch, still in flight: acked one by one
        channel_acks.finish([poison], how="reject")
        channel_acks.finish(third)
        assert acks == [(4, False), (5, False), (6, False), (8, False), (9, False), (10, False)]
        _still_open(taken[0].channel)
        assert [message.payload for message in first] == [1, 2, 3]
    # The connection closed with the first batch unfinished (a crash): the broker has exactly it back.
    assert _left_on_queue(ten) == [1, 2, 3]
    assert drain_queue(ten, DEAD_LETTER_QUEUE) == [7]


def test_one_multiple_ack_covers_a_run_once_nothing_before_it_is_unfinished(ten):
    with Connection(ten) as conn:
        taken, acks = _deliveries(conn, 10)
        channel_acks = _tracking(taken)
        channel_acks.finish(taken[3:6])  # alone: the first batch is in flight
        channel_acks.finish([taken[6]], how="requeue")  # a retry, on the same channel
        channel_acks.finish(taken[0:3])  # the first batch: one ack, over the settled 4–7 (not acked again)
        channel_acks.finish(taken[7:10])  # in order now: one ack
        assert acks == [(4, False), (5, False), (6, False), (3, True), (10, True)]
        # The requeued one comes again on this channel (the consumer is still on), with a new tag.
        while len(taken) < 11:
            conn.drain_events(timeout=5)
        again = taken[10]
        channel_acks.delivered_now(again)
        channel_acks.finish([again])
        assert again.payload == 7 and acks[-1] == (11, True)
        _still_open(taken[0].channel)
    assert _left_on_queue(ten) == []


def test_a_message_finished_after_its_connection_closed_is_left_to_the_broker(ten):
    conn = Connection(ten)
    taken, acks = _deliveries(conn, 10)
    channel_acks = _tracking(taken)
    conn.close()
    channel_acks.finish(taken)  # no ack on a dead connection, no error
    assert acks == []
    assert _left_on_queue(ten) == list(range(1, 11))


# --- in a service: the batch handler's acks ---------------------------------------------------------------------

held = GreenEvent()


class HeldBatchService:
    """Its batches of "held …" events wait for `held` (a batch still in flight while later ones finish)."""

    name = "heldbatch"
    db = Database(Base)

    @batch_event_handler(SOURCE, "thing_happened")
    def on_things(self, events: list[Event]) -> None:
        for event in events:
            Behaviour.attempts[event.id] += 1
        if any(event.data["label"].startswith("held") for event in events) and not held.ready():
            held.wait()
        with self.db.begin():
            for event in events:
                if first_delivery(self.db, Inbox, event):
                    self.db.add(Effect(event_id=event.id, label=event.data["label"]))
        for event in events:
            Behaviour.committed[event.id] += 1


def test_a_service_killed_with_a_batch_in_flight_gets_back_only_that_batch(container_factory, config, store):
    global held
    held = GreenEvent()
    Behaviour.reset()
    config = {**config, "EVENT_BATCH_SIZE": 3, "EVENT_BATCH_LINGER_SECONDS": 0.2}
    declare_topology([HeldBatchService], config)
    container = container_factory(HeldBatchService, config)
    container.start()
    amqp_uri = config["AMQP_URI"]
    first = [thing(f"held {n}") for n in range(3)]
    later = [thing(f"later {n}") for n in range(3)]
    for event in first:
        publish(amqp_uri, event)
    wait_for(lambda: all(Behaviour.attempts[e.id] == 1 for e in first), what="the first batch in flight")
    for event in later:
        publish(amqp_uri, event)
    wait_for(lambda: all(Behaviour.committed[e.id] == 1 for e in later), what="the later batch done")
    eventlet.sleep(0.2)  # its acks on their way
    container.kill()  # a crash: the first batch never finished

    held.send()
    again = container_factory(HeldBatchService, config)
    again.start()
    wait_for(lambda: all(Behaviour.committed[e.id] == 1 for e in first), what="the first batch redelivered")
    eventlet.sleep(0.5)
    assert all(Behaviour.attempts[e.id] == 2 for e in first)
    assert all(Behaviour.attempts[e.id] == 1 for e in later), "a finished batch was delivered again"
    assert store.count(Effect) == 6
    again.kill()
