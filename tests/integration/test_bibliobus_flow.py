"""Reservations at a bibliobus stop: they wait while it is closed (no copy taken), go to allocation when it
opens, get the next visit with room when made ready, and the manifest lists them."""

from datetime import UTC, datetime

from services.visits import upcoming_visits
from tests.helpers import daily_visits, wait_for
from tests.integration.helpers import RULE, add_stop, catalogue


def reserve(bus, token, card: str, title: str, point: str = "lux") -> dict:
    placed = bus.reservations.post("/reservations", headers=token("patron", card),
                                   json={"patron": card, "pickup_point": point, "titles": [title]})
    assert placed.status_code == 201, placed.text
    return placed.json()


def status(bus, reservation_id: str) -> str:
    return bus.reservations.get(f"/reservations/{reservation_id}").json()["status"]


def test_reservations_wait_for_a_closed_stop_then_ride_the_next_visits_within_capacity(drive_factory, token):
    bus = drive_factory(bibliobus_extra={**RULE, "STOP_ENABLE_THRESHOLD": 2})
    add_stop(bus, "lux", capacity=1)
    title = catalogue(bus, "La forêt des lucioles", [("L-1", "central", "R LUC 1"), ("L-2", "central", "R LUC 1")])

    first = reserve(bus, token, "C1", title)
    assert first["status"] == "waiting_for_stop"
    placed = bus.tap.wait("reservation_placed", reservation_id=first["id"])[0]
    assert placed["version"] == 4 and placed["data"]["waiting_for_stop"] is True
    wait_for(lambda: bus.bibliobus.get("/stops/lux").json()["demand"] == 1, what="the signal counted")
    assert bus.inventory.get("/copies/L-1").json()["status"] == "available"  # no copy taken for a closed stop
    assert bus.tap.of_type("items_allocated") == []
    cancelled_early = reserve(bus, token, "C9", catalogue(bus, "Le phare", [("P-1", "central", "R PHA 1")]))
    assert bus.reservations.post(f"/reservations/{cancelled_early['id']}/cancel").json()["status"] == "cancelled"

    second = reserve(bus, token, "C2", title)  # the second patron: demand 2 opens the stop
    bus.tap.wait("stop_enabled", stop_id="lux")
    released = bus.tap.wait("reservation_released_to_allocation", count=2)
    assert {e["data"]["reservation_id"] for e in released} == {first["id"], second["id"]}
    wait_for(lambda: status(bus, first["id"]) == status(bus, second["id"]) == "allocated", what="both allocated")
    assert status(bus, cancelled_early["id"]) == "cancelled"  # not released: it was cancelled

    visits = list(upcoming_visits(daily_visits(), datetime.now(UTC), "Europe/Paris"))
    readies = [bus.reservations.post(f"/reservations/{r['id']}/ready").json() for r in (first, second)]
    assert [r["status"] for r in readies] == ["ready", "ready"]
    events = [bus.tap.wait("reservation_ready", reservation_id=r["id"])[0] for r in readies]
    assert [e["version"] for e in events] == [3, 3]
    arrivals = [e["data"]["visit"]["arrives_at"] for e in events]
    assert arrivals[0] == visits[0].arrives_at.isoformat() and arrivals[1] == visits[1].arrives_at.isoformat()
    assert readies[1]["pickup_deadline"] >= readies[1]["visit"]["departs_at"]

    manifest = wait_for(lambda: (m := bus.bibliobus.get("/stops/lux/manifest").json())["reservations"] and m,
                        what="the manifest of the next visit")
    assert manifest["visit"]["arrives_at"] == arrivals[0] and manifest["capacity"] == 1
    assert [(r["reservation_id"], r["patron"]) for r in manifest["reservations"]] == [(first["id"], "C1")]
    assert manifest["reservations"][0]["lines"][0]["barcode"] in ("L-1", "L-2")

    # forced off, the stop still serves what is ready for it; new reservations there wait again
    assert bus.bibliobus.post("/stops/lux/override", json={"mode": "off", "reason": "travaux"}).status_code == 200
    wait_for(lambda: not next(p for p in bus.reservations.get("/pickup-points").json() if p["id"] == "lux")["enabled"],
             what="reservations to learn the stop closed")
    assert bus.bibliobus.get("/stops/lux/manifest").json()["reservations"][0]["reservation_id"] == first["id"]
    assert reserve(bus, token, "C3", title)["status"] == "waiting_for_stop"
    wait_for(lambda: bus.bibliobus.get("/stops/lux").json()["pending_reservations"] == 3,
             what="two ready and one waiting reservation to serve at the stop")
