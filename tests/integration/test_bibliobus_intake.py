"""Demand signals taken in batches: a duplicate has no second effect, and one event that keeps failing is
dead-lettered alone while its batch-mates are recorded."""

import json
import uuid
from datetime import UTC, datetime

from kombu import Connection, Exchange, Producer

from services.bibliobus.models import DemandSignal
from services.common.deadletters import list_dead_letters
from tests.helpers import wait_for
from tests.integration.helpers import add_stop, bus_rows


def placed(patron: str, event_id: str | None = None) -> dict:
    at = datetime.now(UTC).isoformat()
    return {"id": event_id or str(uuid.uuid4()), "type": "reservation_placed", "version": 2, "source": "reservations",
            "occurred_at": at, "data": {
                "reservation_id": str(uuid.uuid4()), "patron": patron, "channel": "web", "placed_at": at,
                "pickup_point": {"id": "lux", "name": "Lux", "kind": "bibliobus_stop", "site": "central"},
                "waiting_for_stop": True, "lines": [{"line_id": "l1", "title_id": "t1"}]}}


def publish(amqp_uri: str, *envelopes: dict) -> None:
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        for envelope in envelopes:
            producer.publish(json.dumps(envelope), exchange=Exchange("reservations.events", type="topic",
                                                                     durable=True),
                             routing_key="reservation_placed", content_type="application/json", delivery_mode=2)


def test_a_batch_with_a_duplicate_and_a_poisoned_event(drive_factory, rabbit_config):
    bus = drive_factory(bibliobus_extra={"EVENT_BATCH_LINGER_SECONDS": 0.3})
    add_stop(bus, "lux")
    twice = placed("C1")
    publish(rabbit_config["AMQP_URI"], twice, placed("C2"), twice)  # one batch, C1's event twice in it
    wait_for(lambda: bus_rows(bus, DemandSignal) == 2, what="C1 and C2 recorded")
    publish(rabbit_config["AMQP_URI"], twice)  # and once more, in a batch of its own
    too_long = "C" * 60  # fits the event's schema, not the signals table: fails at the database, every time
    publish(rabbit_config["AMQP_URI"], placed("C3"), placed(too_long), placed("C4"))

    wait_for(lambda: any(d.event_type == "reservation_placed" for d in list_dead_letters(rabbit_config["AMQP_URI"])),
             timeout=15, what="the poisoned event dead-lettered")
    assert bus_rows(bus, DemandSignal) == 4  # C1 once, C2, C3, C4; the poisoned one alone went to the dead letters
    assert bus.bibliobus.get("/stops/lux").json()["demand"] == 4
    dead = [d for d in list_dead_letters(rabbit_config["AMQP_URI"]) if d.event_type == "reservation_placed"]
    assert len(dead) == 1 and dead[0].queue.endswith("bibliobus.on_reservation_placed")
