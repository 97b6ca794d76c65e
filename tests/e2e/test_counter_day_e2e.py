"""The counter's day end to end: the services as processes, over HTTP and AMQP. Bookings racing for one slot
across the two reservations processes; a selection asked by phone, claimed by one of ten members of staff at once,
prepared, booked, "I'm here", handed over."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import func, select

from services.reservations.models import Appointment, PickupSlot
from tests.e2e.helpers import import_catalogue, scalar, seed_ready
from tests.helpers import EVERY_DAY, PARIS, coming_slots, wait_for


def test_hundred_bookings_race_for_three_places_across_two_processes(system, token):
    staff = token("staff")
    reservations = system.start("reservations")
    replicas = reservations.replicas
    for replica in replicas:
        replica.headers = staff
    assert replicas[0].call("PUT", "/pickup-points/central-adult/calendar",
                            json={"opening_hours": EVERY_DAY, "slot_capacity": 3}).status_code == 200
    rids = seed_ready(system.urls["reservations"], 100, "central-adult")
    slot = coming_slots(replicas[1], "central-adult")[0]
    assert slot["free"] == 3

    def book(n: int):
        answer = replicas[n % 2].call("PUT", f"/reservations/{rids[n]}/appointment",
                                      json={"starts_at": slot["starts_at"]})
        return answer.status_code, answer.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(book, range(100)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * 3 + [409] * 97
    assert all("full" in body["message"] for status, body in answers if status == 409)
    url = system.urls["reservations"]
    assert scalar(url, select(PickupSlot.booked)) == 3
    assert scalar(url, select(func.count()).select_from(Appointment).where(Appointment.status == "booked")) == 3
    assert len(system.tap.wait("pickup_slot_booked", count=3)) == 3
    assert replicas[0].get("/pickup-points/central-adult/slots", params={
        "from": slot["starts_at"][:10], "to": slot["starts_at"][:10]}).json()[0]["free"] == 0


def test_selection_by_phone_to_hand_over_with_an_appointment(system, token):
    staff, patron = token("staff", "claire"), token("patron", "C777")
    reservations = system.start("reservations")
    inventory = system.start("inventory")
    reservations.headers = inventory.headers = staff
    import_catalogue(system, inventory, "9782070360024,Meurtres à Malmö,Karin Holm,book,M-1,central,RP HOL\n"
                                        "9782070368228,Le lac gelé,Karin Holm,book,M-2,central,RP HOL\n", 2)
    reservations.call("PUT", "/pickup-points/central-adult/calendar", json={"opening_hours": EVERY_DAY})

    # By phone: staff ask on the patron's behalf; the staff app sees the request.
    asked = reservations.post("/selections", json={"patron": "C777", "pickup_point": "central-adult",
                                                   "tastes": "polars scandinaves", "audience": "adult",
                                                   "documents": 2})
    assert asked.status_code == 201 and asked.json()["channel"] == "phone"
    sid = asked.json()["id"]
    system.tap.wait("selection_requested", selection_id=sid)
    # Ten members of staff take it at once, through both replicas: one gets it (one conditional update).
    agents = [f"agent-{n}" for n in range(10)]
    with ThreadPoolExecutor(10) as pool:
        claims = list(pool.map(lambda a: reservations.post(f"/selections/{sid}/claim", headers=token("staff", a)),
                               agents))
    assert all(replica.answered for replica in reservations.replicas)
    won = [a for a, c in zip(agents, claims, strict=True) if c.status_code == 200]
    assert len(won) == 1 and sorted(c.status_code for c in claims) == [200] + [409] * 9
    assert all(c.json()["details"]["claimed_by"] == won[0] for c in claims if c.status_code == 409)
    assert reservations.post(f"/selections/{sid}/release", headers=token("staff", won[0])).status_code == 200
    assert reservations.post(f"/selections/{sid}/claim").status_code == 200
    found = inventory.get("/titles", params={"q": "holm"}).json()["titles"]
    prepared = reservations.post(f"/selections/{sid}/prepare", json={"titles": [t["id"] for t in found]})
    assert prepared.status_code == 200, prepared.text
    rid = prepared.json()["reservation_id"]
    assert system.tap.wait("selection_prepared", selection_id=sid)[0]["data"]["outcome"] == "prepared"
    system.tap.wait("items_allocated", reservation_id=rid)
    wait_for(lambda: reservations.get(f"/reservations/{rid}").json()["status"] == "allocated")
    assert reservations.post(f"/reservations/{rid}/ready").status_code == 200

    # The patron books a slot, comes, says "I'm here"; the counter's app hears it and hands over.
    slot = coming_slots(reservations, "central-adult")[0]
    booked = reservations.call("PUT", f"/reservations/{rid}/appointment", headers=patron,
                               json={"starts_at": slot["starts_at"]})
    assert booked.status_code == 200, booked.text
    system.tap.wait("pickup_slot_booked", reservation_id=rid)
    assert reservations.post(f"/reservations/{rid}/arrived", headers=patron).status_code == 200
    arrival = system.tap.wait("patron_arrived", reservation_id=rid)[0]["data"]
    assert arrival["ready"] is True and arrival["slot_starts_at"] and arrival["hold_shelf"] == "77"
    collected = reservations.post(f"/reservations/{rid}/collect")
    assert collected.status_code == 200 and collected.json()["handed_over_after_seconds"] is not None
    system.tap.wait("reservation_collected", reservation_id=rid)
    mine = reservations.get("/patrons/C777/selections", headers=patron).json()
    assert mine[0]["reservation_status"] == "collected" and len(mine[0]["chosen"]) == 2

    # The figures count it: asked and prepared by phone, placed by phone, collected after a recorded wait,
    # and one place taken in the slots of its day.
    today = datetime.now(PARIS).date()
    stats = reservations.get("/stats", params={"from": (today - timedelta(days=1)).isoformat(),
                                               "to": (today + timedelta(days=8)).isoformat()})
    assert stats.status_code == 200, stats.text
    phone = [r for r in stats.json()["rows"] if r["pickup_point"] == "central-adult" and r["channel"] == "phone"]
    assert sum(r["selections_asked"] for r in phone) == 1 and sum(r["selections_prepared"] for r in phone) == 1
    assert sum(r["reservations_placed"] for r in phone) == 1 and sum(r["collections"] for r in phone) == 1
    assert [r["median_wait_seconds"] for r in phone if r["collections"]][0] is not None
    slot_day = datetime.fromisoformat(slot["starts_at"]).astimezone(PARIS).date().isoformat()
    booked = [s for s in stats.json()["slots"] if s["pickup_point"] == "central-adult" and s["day"] == slot_day]
    assert booked[0]["booked"] == 1 and booked[0]["occupancy"] > 0
    assert reservations.get("/stats", headers=patron, params={"from": today.isoformat(),
                                                              "to": today.isoformat()}).status_code == 403
