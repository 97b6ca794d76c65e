"""A request can be followed across services by its correlation id: the X-Request-ID of the HTTP request is echoed
by the answer, carried by every event the request leads to (each naming its cause), and by the log lines of the
handlers on the way — in batches too, where each event's consequences carry that event's own correlation."""

import io
import json
import logging

import pytest

from services.common.logs import JsonFormatter
from tests.helpers import wait_for
from tests.integration.helpers import catalogue


@pytest.fixture
def log_lines():
    """The JSON lines the services of this process write (as their console handler formats them)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="test"))
    worker_log = logging.getLogger("drive.worker")
    previous = worker_log.level
    worker_log.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)
    worker_log.setLevel(previous)


def test_a_request_id_follows_the_events_it_leads_to_and_their_handlers_logs(drive, log_lines):
    held = catalogue(drive, "Le voyage blanc", [("R-1", "central", "R 1")])
    none = catalogue(drive, "La gare oubliée", [])
    placed = drive.reservations.post("/reservations", headers={"X-Request-ID": "abc-123"},
                                     json={"patron": "C1", "pickup_point": "central-adult", "titles": [held, none]})
    assert placed.status_code == 201, placed.text
    assert placed.headers["X-Request-ID"] == "abc-123"
    rid = placed.json()["id"]

    announced = drive.tap.wait("reservation_placed", reservation_id=rid)[0]
    assert (announced["correlation_id"], announced["causation_id"]) == ("abc-123", "abc-123")
    allocated = drive.tap.wait("items_allocated", reservation_id=rid)[0]
    waiting = drive.tap.wait("items_unavailable", reservation_id=rid)[0]
    for answer in (allocated, waiting):  # inventory's answers: caused by the placement, in its chain
        assert (answer["correlation_id"], answer["causation_id"]) == ("abc-123", announced["id"]), answer

    # The handlers' own lines, in both services, carry the chain they worked for.
    def handled(entrypoint, correlation_id):
        return [line for line in log_lines() if line.get("entrypoint") == entrypoint
                and line.get("event") == "worker done"
                and correlation_id in (line.get("correlation_id"), *line.get("correlation_ids", ()))]
    for entrypoint in ("place_reservation", "on_reservation_placed", "on_items_allocated", "on_items_unavailable"):
        # (waited for: reservations has taken inventory's answers in before the reservation is cancelled)
        wait_for(lambda entrypoint=entrypoint: handled(entrypoint, "abc-123"), what=f"{entrypoint}'s line")

    # A second request on the same reservation is a chain of its own, through a second service and back.
    shelved = len(drive.tap.of_type("copy_available", barcode="R-1"))  # when it was catalogued
    cancelled = drive.reservations.post(f"/reservations/{rid}/cancel", headers={"X-Request-ID": "abc-456"})
    assert cancelled.status_code == 200 and cancelled.headers["X-Request-ID"] == "abc-456"
    cancellation = drive.tap.wait("reservation_cancelled", reservation_id=rid)[0]
    assert (cancellation["correlation_id"], cancellation["causation_id"]) == ("abc-456", "abc-456")
    freed = drive.tap.wait("copy_available", count=shelved + 1, barcode="R-1")[-1]
    assert (freed["correlation_id"], freed["causation_id"]) == ("abc-456", cancellation["id"])

    for entrypoint in ("cancel", "on_reservation_cancelled"):
        wait_for(lambda entrypoint=entrypoint: handled(entrypoint, "abc-456"), what=f"{entrypoint}'s line")


@pytest.mark.time_limit(90)
def test_in_a_batch_each_answer_carries_the_correlation_of_its_own_placement(drive_factory, log_lines):
    # Inventory waits long enough for the placements to share its batches.
    drive = drive_factory(inventory_extra={"EVENT_BATCH_LINGER_SECONDS": 1.0})
    title = catalogue(drive, "Les voies du nord", [(f"N-{i}", "central", "R 2") for i in range(4)])
    requests = {}
    for i in range(4):
        placed = drive.reservations.post("/reservations", headers={"X-Request-ID": f"batch-{i}"},
                                         json={"patron": f"C{i}", "pickup_point": "central-adult", "titles": [title]})
        assert placed.status_code == 201, placed.text
        requests[placed.json()["id"]] = f"batch-{i}"
    for rid, request_id in requests.items():
        announced = drive.tap.wait("reservation_placed", reservation_id=rid)[0]
        answer = drive.tap.wait("items_allocated", reservation_id=rid)[0]
        assert (answer["correlation_id"], answer["causation_id"]) == (request_id, announced["id"]), answer
    batches = [line for line in log_lines() if line.get("entrypoint") == "on_reservation_placed"
               and line.get("event") == "worker done"]
    assert any(line.get("batch_size", 1) > 1 for line in batches), batches  # the case under test happened
