"""End to end, the services as processes: five patrons reserve at a closed bibliobus stop, the stop opens,
their reservations are allocated and made ready, the manifest of the next visit lists them; an analyst then
forces the stop off, with a reason, and the audit log keeps it."""

from tests.e2e.helpers import import_catalogue
from tests.helpers import stop_body, wait_for

PATRONS = [f"B{n}" for n in range(1, 6)]


def test_five_patrons_open_a_stop_and_ride_its_next_visit_then_an_analyst_closes_it(system, token):
    staff, analyst = token("staff"), token("analyst", "analyste-7")
    reservations = system.start("reservations")
    inventory = system.start("inventory")
    bibliobus = system.start("bibliobus", STOP_ENABLE_THRESHOLD="5", STOP_DISABLE_THRESHOLD="2")
    reservations.headers = inventory.headers = staff
    bibliobus.headers = analyst
    assert bibliobus.post("/stops", json=stop_body("saint-remy-mairie", capacity=6)).status_code == 201
    wait_for(lambda: any(p["id"] == "saint-remy-mairie" for p in reservations.get("/pickup-points").json()),
             what="the stop offered as a pickup point")
    rows = "".join(f",Le voyage {n},Camille Laurent,book,V-{n},central,R LAU {n}\n" for n in range(5))
    import_catalogue(system, inventory, rows, 5)
    titles = [t["id"] for t in inventory.get("/titles", params={"q": "voyage"}).json()["titles"]]

    placed = []
    for card, title in zip(PATRONS, titles, strict=True):
        answer = reservations.post("/reservations", headers=token("patron", card), json={
            "patron": card, "pickup_point": "saint-remy-mairie", "titles": [title]})
        assert answer.status_code == 201, answer.text
        placed.append(answer.json())
    assert [p["status"] for p in placed[:4]] == ["waiting_for_stop"] * 4  # the fifth may find it open already

    opened = system.tap.wait("stop_enabled", stop_id="saint-remy-mairie", timeout=15)[0]["data"]
    assert (opened["reason"], opened["demand"], opened["enable_threshold"]) == ("threshold", 5, 5)
    ids = [p["id"] for p in placed]
    allocated = system.tap.wait("items_allocated", count=5, timeout=15)
    assert sorted(e["data"]["reservation_id"] for e in allocated) == sorted(ids)
    wait_for(lambda: all(reservations.get(f"/reservations/{rid}").json()["status"] == "allocated" for rid in ids),
             timeout=15, what="every reservation allocated")
    for rid in ids:
        assert reservations.post(f"/reservations/{rid}/ready").json()["status"] == "ready"
    visits = {e["data"]["visit"]["arrives_at"] for e in system.tap.wait("reservation_ready", count=5)}
    assert len(visits) == 1  # capacity 6: the five ride the same visit

    manifest = wait_for(lambda: len((m := bibliobus.get("/stops/saint-remy-mairie/manifest",
                                                        headers=staff).json())["reservations"]) == 5 and m,
                        timeout=15, what="the five on the manifest")
    assert manifest["visit"]["arrives_at"] in visits
    assert sorted(r["patron"] for r in manifest["reservations"]) == PATRONS

    forced = bibliobus.post("/stops/saint-remy-mairie/override",
                            json={"mode": "off", "reason": "véhicule immobilisé au garage"})
    assert forced.status_code == 200 and not forced.json()["enabled"]
    closed = system.tap.wait("stop_disabled", stop_id="saint-remy-mairie")[0]["data"]
    assert (closed["reason"], closed["decided_by"], closed["note"]) == (
        "manual", "analyste-7", "véhicule immobilisé au garage")
    audit = bibliobus.get("/stops/saint-remy-mairie/history").json()
    assert [(a["action"], a["reason"], a["decided_by"]) for a in audit[:2]] == [
        ("disabled", "manual", "analyste-7"), ("override_off", "manual", "analyste-7")]
    assert audit[0]["note"] == "véhicule immobilisé au garage" and audit[0]["demand"] == 5
    assert ("enabled", "threshold", "rule") in [(a["action"], a["reason"], a["decided_by"]) for a in audit]
    still = bibliobus.get("/stops/saint-remy-mairie/manifest", headers=staff).json()["reservations"]
    assert len(still) == 5  # closing keeps serving what is ready for the next visit
    # Two replicas of each service, their rounds every second: one switch each way, one allocation per reservation.
    switches = [len(system.tap.of_type(t, stop_id="saint-remy-mairie")) for t in ("stop_enabled", "stop_disabled")]
    assert switches == [1, 1]
    assert sorted(e["data"]["reservation_id"] for e in system.tap.of_type("items_allocated")) == sorted(ids)
