"""The kit's event counts (`drive_events_handled_total`) on the real broker, on SQLite and PostgreSQL: a poisoned
event retried until its last attempt and dead-lettered, a redelivery counted as a duplicate, the malformed and
the undecodable dead-lettered at once. Counted in the container's own registry (any nameko service has one)."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common import metrics
from services.common.messaging import DEAD_LETTER_QUEUE, declare_topology
from tests.helpers import wait_for
from tests.integration.plumbing.kit import Behaviour, Effect, PlumbingService, publish, publish_raw, queue_depth, thing

pytestmark = pytest.mark.time_limit(30)


def counts(container) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.of(container).render().decode()):
        for s in family.samples:
            if s.name == "drive_events_handled_total":
                found[(s.labels["event_type"], s.labels["outcome"])] = s.value
    return found


def test_events_are_counted_by_outcome(container_factory, config, store, amqp_uri):
    Behaviour.reset()
    declare_topology([PlumbingService], config)
    container = container_factory(PlumbingService, config)
    container.start()
    good, poison = thing("good"), thing("poison", poison=True)
    publish(amqp_uri, good)
    publish(amqp_uri, poison)
    publish(amqp_uri, good)  # delivered again: the inbox has it
    publish_raw(amqp_uri, {**thing("x").to_message(), "data": {"poison": "maybe"}}, serializer="json")
    publish_raw(amqp_uri, b"{not json", content_type="application/json", content_encoding="utf-8")

    wait_for(lambda: queue_depth(amqp_uri, DEAD_LETTER_QUEUE) == 3, what="three dead letters")
    wait_for(lambda: counts(container).get(("thing_happened", "duplicate")) == 1, what="the duplicate counted")
    assert store.count(Effect) == 1 and Behaviour.attempts[poison.id] == 3
    found = counts(container)
    assert found[("thing_happened", "done")] == 1
    assert found[("thing_happened", "retried")] == 2  # attempts 1 and 2 of 3
    assert found[("thing_happened", "dead_lettered")] == 2  # the poison's last attempt, the malformed one
    assert found[("(undecodable)", "dead_lettered")] == 1
    container.kill()  # before its database is dropped
