"""The drive, steps 1–6, against both services on the real broker and database."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, update

from services.reservations.models import Reservation
from tests.helpers import wait_for
from tests.integration.helpers import catalogue


def reservation(drive, reservation_id: str) -> dict:
    return drive.reservations.get(f"/reservations/{reservation_id}").json()


def test_reserve_allocate_prepare_hand_over_return(drive, token):
    near = catalogue(drive, "La neige rouge", [("N-1", "neighbourhood", "R HOL 2"), ("C-1", "central", "R HOL 2")])
    far = catalogue(drive, "Le jardin secret", [("C-2", "central", "R HOL 10")])
    patron = token("patron", "C100")

    placed = drive.reservations.post("/reservations", headers=patron,
                                     json={"patron": "C100", "pickup_point": "neighbourhood", "titles": [near, far]})
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert body["status"] == "placed" and body["channel"] == "web" and len(body["lines"]) == 2
    rid = body["id"]

    drive.tap.wait("items_allocated", reservation_id=rid)
    allocated = wait_for(lambda: (r := reservation(drive, rid))["status"] == "allocated"
                         and all(ln["status"] == "allocated" for ln in r["lines"]) and r)
    by_title = {ln["title_id"]: ln for ln in allocated["lines"]}
    assert by_title[near]["barcode"] == "N-1" and not by_title[near]["needs_transfer"]  # the local copy first
    assert by_title[far]["barcode"] == "C-2" and by_title[far]["needs_transfer"]

    walk = drive.reservations.get("/pickup-points/neighbourhood/preparation-list").json()["items"]
    assert [i["barcode"] for i in walk] == ["N-1", "C-2"]  # this site's shelves first, then transfers

    ready = drive.reservations.post(f"/reservations/{rid}/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    deadline = datetime.fromisoformat(ready.json()["pickup_deadline"])
    # Ten days on, at closing time of an opening day of the drive (default hours: Tuesday–Saturday, till 18:00).
    local = deadline.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.date() - datetime.now(ZoneInfo("Europe/Paris")).date()).days >= 10
    assert local.isoweekday() in (2, 3, 4, 5, 6) and (local.hour, local.minute) == (18, 0)
    assert drive.reservations.post(f"/reservations/{rid}/ready").status_code == 409
    event = drive.tap.wait("reservation_ready", reservation_id=rid)[0]
    assert event["source"] == "reservations" and event["version"] >= 1 and "occurred_at" in event

    collected = drive.reservations.post(f"/reservations/{rid}/collect")
    assert collected.status_code == 200 and collected.json()["status"] == "collected"
    drive.tap.wait("reservation_collected", reservation_id=rid)
    wait_for(lambda: drive.inventory.get("/copies/N-1").json()["status"] == "on_loan")
    loans = drive.reservations.get("/patrons/C100/loans", headers=patron).json()
    assert sorted(ln["barcode"] for ln in loans) == ["C-2", "N-1"]
    assert all(ln["returned_at"] is None for ln in loans)

    returned = drive.inventory.post("/checkins", json={"barcode": "N-1"})
    assert returned.status_code == 201 and returned.json()["status"] == "quarantine"
    assert drive.inventory.post("/checkins", json={"barcode": "N-1"}).status_code == 409
    drive.tap.wait("item_returned", barcode="N-1")
    wait_for(lambda: any(ln["returned_at"] for ln in drive.reservations.get("/patrons/C100/loans",
                                                                             headers=patron).json()))
    history = [h["what"] for h in drive.inventory.get("/copies/N-1").json()["history"]]
    assert history == ["catalogued", "on_shelf", "allocated", "on_loan", "returned"]


def test_waitlist_is_served_when_a_reservation_is_cancelled(drive, token):
    title = catalogue(drive, "Une île lointaine", [("W-1", "central", "R BER 1")])
    first = drive.reservations.post("/reservations", json={"patron": "C1", "pickup_point": "central-adult",
                                                           "titles": [title]}).json()["id"]
    drive.tap.wait("items_allocated", reservation_id=first)
    second = drive.reservations.post("/reservations", json={"patron": "C2", "pickup_point": "central-adult",
                                                            "titles": [title]}).json()["id"]
    waiting = drive.tap.wait("items_unavailable", reservation_id=second)[0]
    assert waiting["data"]["lines"][0]["waitlist_position"] == 1
    wait_for(lambda: reservation(drive, second)["lines"][0]["status"] == "waitlisted")

    other = token("patron", "C2")
    assert drive.reservations.post(f"/reservations/{first}/cancel", headers=other).status_code == 403
    assert drive.reservations.get(f"/reservations/{first}", headers=other).status_code == 403
    cancelled = drive.reservations.post(f"/reservations/{first}/cancel", headers=token("patron", "C1"))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert drive.tap.wait("reservation_cancelled", reservation_id=first)[0]["data"]["cancelled_by"] == "patron"

    moved = drive.tap.wait("items_allocated", reservation_id=second)[0]
    assert moved["data"]["reason"] == "waitlist" and moved["data"]["lines"][0]["barcode"] == "W-1"
    wait_for(lambda: reservation(drive, second)["status"] == "allocated")


def test_uncollected_reservation_expires_and_its_copy_goes_back(drive_factory):
    drive = drive_factory(reservations_extra={"EXPIRY_CHECK_SECONDS": 0.3})
    title = catalogue(drive, "Le silence froid", [("E-1", "central", "R PET 3")])
    rid = drive.reservations.post("/reservations", json={"patron": "C5", "pickup_point": "central-youth",
                                                         "titles": [title]}).json()["id"]
    wait_for(lambda: reservation(drive, rid)["status"] == "allocated")
    assert drive.reservations.post(f"/reservations/{rid}/ready").status_code == 200
    engine = create_engine(drive.urls["reservations"])
    with engine.begin() as conn:  # the deadline passes
        conn.execute(update(Reservation).where(Reservation.id == rid)
                     .values(pickup_deadline=datetime.now(UTC) - timedelta(minutes=1)))
    engine.dispose()
    assert len(drive.tap.wait("reservation_expired", reservation_id=rid)) == 1
    released = drive.tap.wait("copy_available", count=2, barcode="E-1")  # catalogued, then given back
    assert released[-1]["data"]["reason"] == "released"
    assert reservation(drive, rid)["status"] == "expired"
    assert drive.inventory.get("/copies/E-1").json()["status"] == "available"
