"""The counter's day against both services on the real broker and database: calendar and closed days, slots
and appointments, the day sheet, claims, "I'm here", and selections prepared by staff."""

from datetime import datetime, timedelta

from sqlalchemy import create_engine, select, update

from services.reservations.models import Appointment, PickupSlot, Reservation
from tests.helpers import EVERY_DAY, PARIS, coming_slots, today, wait_for
from tests.integration.helpers import catalogue, ready_reservation


def test_calendar_hours_closed_days_and_bad_input(drive):
    point = "central-youth"
    put = drive.reservations.call("PUT", f"/pickup-points/{point}/calendar",
                                  json={"opening_hours": {"wednesday": ["14:00-18:00", "10:00-12:00"]},
                                        "slot_minutes": 30, "slot_capacity": 2})
    assert put.status_code == 200, put.text
    assert put.json()["opening_hours"] == {"wednesday": ["10:00-12:00", "14:00-18:00"]}
    # A Wednesday: 2 h + 4 h of 30-min slots = 12 slots, 2 places each.
    wednesday = today() + timedelta(days=(2 - today().weekday()) % 7 + 7)
    slots = drive.reservations.get(f"/pickup-points/{point}/slots",
                                   params={"from": wednesday.isoformat(), "to": wednesday.isoformat()}).json()
    assert len(slots) == 12 and {s["capacity"] for s in slots} == {2} and {s["free"] for s in slots} == {2}
    closed = drive.reservations.post("/closed-days", json={"pickup_point": point, "day": wednesday.isoformat(),
                                                           "reason": "inventaire annuel"})
    assert closed.status_code == 201, closed.text
    assert drive.reservations.get(f"/pickup-points/{point}/slots", params={
        "from": wednesday.isoformat(), "to": wednesday.isoformat()}).json() == []
    days = drive.reservations.get(f"/pickup-points/{point}/calendar", params={
        "from": wednesday.isoformat(), "to": (wednesday + timedelta(days=1)).isoformat()}).json()["days"]
    assert [(d["open"], d["closed_because"]) for d in days] == [(False, "inventaire annuel"),
                                                                (False, "fermé ce jour de la semaine")]
    again = drive.reservations.post("/closed-days", json={"pickup_point": point, "day": wednesday.isoformat(),
                                                          "reason": "deux fois"})
    assert again.status_code == 409

    def refused(response, field):
        assert response.status_code == 400, response.text
        body = response.json()  # a rule names its field in details, a schema in fields
        assert body.get("details", {}).get("field") == field or field in body.get("fields", {}), body

    refused(drive.reservations.call("PUT", f"/pickup-points/{point}/calendar",
                                    json={"opening_hours": {"wednesday": ["18:00-10:00"]}}), "opening_hours.wednesday")
    refused(drive.reservations.call("PUT", f"/pickup-points/{point}/calendar",
                                    json={"opening_hours": {"mercredi": ["10:00-12:00"]}}), "opening_hours")
    refused(drive.reservations.get(f"/pickup-points/{point}/slots", params={"from": "2026-13-01", "to": "x"}), "from")
    refused(drive.reservations.get(f"/pickup-points/{point}/slots", params={
        "from": wednesday.isoformat(), "to": (wednesday - timedelta(days=1)).isoformat()}), "to")
    refused(drive.reservations.post("/closed-days", json={"day": "2020-01-01", "reason": "trop tard"}), "day")
    # Nothing of the refused changes was kept.
    assert drive.reservations.get(f"/pickup-points/{point}/calendar", params={
        "from": wednesday.isoformat(), "to": wednesday.isoformat()}).json()["opening_hours"] == {
        "wednesday": ["10:00-12:00", "14:00-18:00"]}


def test_book_move_cancel_an_appointment_and_who_may(drive, token):
    drive.reservations.call("PUT", "/pickup-points/central-adult/calendar",
                            json={"opening_hours": EVERY_DAY, "slot_capacity": 1})
    titles = [catalogue(drive, f"Titre {n}", [(f"A-{n}", "central", f"R {n}")]) for n in range(3)]
    patron = token("patron", "C1")
    first = ready_reservation(drive, "C1", titles[0], headers=patron)
    second = ready_reservation(drive, "C2", titles[1])
    slots = coming_slots(drive.reservations)
    one, two = slots[0]["starts_at"], slots[1]["starts_at"]

    booked = drive.reservations.call("PUT", f"/reservations/{first}/appointment", headers=patron,
                                     json={"starts_at": one})
    assert booked.status_code == 200, booked.text
    assert booked.json()["booked_by"] == "patron"
    drive.tap.wait("pickup_slot_booked", reservation_id=first)
    assert coming_slots(drive.reservations)[0]["free"] == 0
    full = drive.reservations.call("PUT", f"/reservations/{second}/appointment", json={"starts_at": one})
    assert full.status_code == 409 and "full" in full.json()["message"]
    # Another patron can neither book, read nor cancel this appointment.
    other = token("patron", "C2")
    assert drive.reservations.call("PUT", f"/reservations/{first}/appointment", headers=other,
                                   json={"starts_at": two}).status_code == 403
    assert drive.reservations.get(f"/reservations/{first}/appointment", headers=other).status_code == 403
    assert drive.reservations.call("DELETE", f"/reservations/{first}/appointment", headers=other).status_code == 403
    # Bad slots: not a slot start, in the past, after the deadline.
    off = (datetime.fromisoformat(one) + timedelta(minutes=7)).isoformat()
    assert drive.reservations.call("PUT", f"/reservations/{first}/appointment", headers=patron,
                                   json={"starts_at": off}).status_code == 400
    past = datetime.now(PARIS).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=1)
    assert drive.reservations.call("PUT", f"/reservations/{first}/appointment", headers=patron,
                                   json={"starts_at": past.isoformat()}).status_code == 400
    late = datetime.combine(today() + timedelta(days=40), datetime.min.time(), PARIS).replace(hour=9)
    assert drive.reservations.call("PUT", f"/reservations/{first}/appointment", headers=patron,
                                   json={"starts_at": late.isoformat()}).status_code == 400
    assert drive.reservations.call("PUT", f"/reservations/{first}/appointment", headers=patron,
                                   json={"starts_at": "demain"}).status_code == 400

    moved = drive.reservations.call("PUT", f"/reservations/{first}/appointment", headers=patron,
                                    json={"starts_at": two})
    assert moved.status_code == 200 and moved.json()["starts_at"] == two
    assert [e["data"]["reason"] for e in drive.tap.wait("pickup_slot_cancelled", reservation_id=first)] == ["moved"]
    free = {s["starts_at"]: s["free"] for s in coming_slots(drive.reservations)}
    assert (free[one], free[two]) == (1, 0)  # the first place was given back
    assert drive.reservations.call("PUT", f"/reservations/{second}/appointment",
                                   json={"starts_at": one}).status_code == 200
    cancelled = drive.reservations.call("DELETE", f"/reservations/{first}/appointment", headers=patron)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert drive.reservations.get(f"/reservations/{first}/appointment", headers=patron).status_code == 404
    # A reservation that is not ready cannot be booked.
    placed = drive.reservations.post("/reservations", json={"patron": "C3", "pickup_point": "central-adult",
                                                            "titles": [titles[2]]}).json()["id"]
    assert drive.reservations.call("PUT", f"/reservations/{placed}/appointment",
                                   json={"starts_at": two}).status_code == 409

    engine = create_engine(drive.urls["reservations"])
    with engine.connect() as conn:
        slots_rows = conn.execute(select(PickupSlot.starts_at, PickupSlot.booked, PickupSlot.capacity)).all()
        active = conn.execute(select(Appointment.starts_at).where(Appointment.status == "booked")).scalars().all()
    engine.dispose()
    assert all(booked <= capacity for _, booked, capacity in slots_rows)
    assert sorted(active) == sorted(s for s, booked, _ in slots_rows for _ in range(booked))


def test_closing_a_day_gives_its_appointments_back(drive):
    drive.reservations.call("PUT", "/pickup-points/central-adult/calendar", json={"opening_hours": EVERY_DAY})
    title = catalogue(drive, "Le jour fermé", [("F-1", "central", "R 1")])
    rid = ready_reservation(drive, "C9", title)
    slot = coming_slots(drive.reservations)[0]
    assert drive.reservations.call("PUT", f"/reservations/{rid}/appointment",
                                   json={"starts_at": slot["starts_at"]}).status_code == 200
    day = datetime.fromisoformat(slot["starts_at"]).astimezone(PARIS).date()
    closed = drive.reservations.post("/closed-days", json={"day": day.isoformat(), "reason": "grève"})
    assert closed.status_code == 201 and closed.json()["appointments_cancelled"] == 1
    event = drive.tap.wait("pickup_slot_cancelled", reservation_id=rid)[0]
    assert event["data"]["reason"] == "drive_closed"
    assert drive.reservations.get(f"/reservations/{rid}/appointment").status_code == 404


def test_day_sheet_claims_and_arrival(drive, token):
    drive.reservations.call("PUT", "/pickup-points/central-adult/calendar", json={"opening_hours": EVERY_DAY})
    titles = [catalogue(drive, f"Feuille {n}", [(f"S-{n}", "central", f"R {n}")]) for n in range(3)]
    booked = ready_reservation(drive, "C21", titles[0])
    walk_in = ready_reservation(drive, "C22", titles[1])
    slot = coming_slots(drive.reservations)[0]
    drive.reservations.call("PUT", f"/reservations/{booked}/appointment", json={"starts_at": slot["starts_at"]})
    early = drive.reservations.post("/reservations", json={"patron": "C23", "pickup_point": "central-adult",
                                                           "titles": [titles[2]]}).json()["id"]
    wait_for(lambda: drive.reservations.get(f"/reservations/{early}").json()["status"] == "allocated")

    # Two members of staff: the second cannot claim what the first prepares, nor make it ready.
    anne, bruno = token("staff", "anne"), token("staff", "bruno")
    assert drive.reservations.post(f"/reservations/{early}/claim", headers=anne).status_code == 200
    refused = drive.reservations.post(f"/reservations/{early}/claim", headers=bruno)
    assert refused.status_code == 409 and "anne" in refused.json()["message"]
    assert drive.reservations.post(f"/reservations/{early}/ready", headers=bruno).status_code == 409
    assert drive.reservations.post(f"/reservations/{early}/release", headers=bruno).status_code == 409
    items = drive.reservations.get("/pickup-points/central-adult/preparation-list").json()["items"]
    assert [i["claimed_by"] for i in items if i["reservation_id"] == early] == ["anne"]

    # The patron says "I'm here" before it is ready: the staff app hears it, the sheet flags it.
    patron = token("patron", "C23")
    assert drive.reservations.post(f"/reservations/{early}/arrived", headers=token("patron", "C22")).status_code == 403
    arrived = drive.reservations.post(f"/reservations/{early}/arrived", headers=patron)
    assert arrived.status_code == 200 and arrived.json()["arrived_at"]
    event = drive.tap.wait("patron_arrived", reservation_id=early)[0]["data"]
    assert event["ready"] is False and event["signalled_by"] == "patron" and "name" not in event
    assert drive.reservations.post(f"/reservations/{early}/arrived", headers=patron).status_code == 200
    sheet_day = datetime.fromisoformat(slot["starts_at"]).astimezone(PARIS).date()
    sheet = drive.reservations.get("/pickup-points/central-adult/day-sheet", params={"date": today().isoformat()})
    assert sheet.status_code == 200, sheet.text
    assert [e["reservation_id"] for e in sheet.json()["arrived_before_ready"]] == [early]
    assert walk_in in [e["reservation_id"] for e in sheet.json()["without_appointment"]]
    later = drive.reservations.get("/pickup-points/central-adult/day-sheet",
                                   params={"date": sheet_day.isoformat()}).json()
    row = next(s for s in later["slots"] if s["starts_at"] == slot["starts_at"])
    assert [(e["reservation_id"], e["hold_shelf"]) for e in row["reservations"]] == [(booked, "H-C21")]
    assert drive.reservations.get("/pickup-points/central-adult/day-sheet",
                                  params={"date": "hier"}).status_code == 400

    # Anne makes it ready and hands it over: the wait from arrival to hand-over is recorded.
    assert drive.reservations.post(f"/reservations/{early}/ready", headers=anne).status_code == 200
    collected = drive.reservations.post(f"/reservations/{early}/collect", headers=anne).json()
    assert collected["status"] == "collected" and collected["handed_over_after_seconds"] >= 0
    assert len(drive.tap.of_type("patron_arrived", reservation_id=early)) == 1  # said twice, one arrival


def test_selection_asked_by_phone_prepared_by_staff(drive, token):
    polar = catalogue(drive, "Meurtres à Malmö", [("P-1", "central", "RP MAL")])
    dvd = catalogue(drive, "Le film", [("D-1", "central", "DVD 1")], material="dvd")
    asked = drive.reservations.post("/selections", json={
        "patron": "C31", "pickup_point": "central-adult", "tastes": "polars scandinaves",
        "audience": "adult", "kinds": ["book"], "documents": 2})
    assert asked.status_code == 201, asked.text
    selection = asked.json()
    assert selection["channel"] == "phone" and selection["status"] == "requested"
    event = drive.tap.wait("selection_requested", selection_id=selection["id"])[0]["data"]
    assert "tastes" not in event and event["documents"] == 2

    queue = drive.reservations.get("/pickup-points/central-adult/selections").json()
    assert [s["id"] for s in queue] == [selection["id"]]
    sid = selection["id"]
    assert drive.reservations.post(f"/selections/{sid}/prepare", json={"titles": [dvd]}).status_code == 400
    assert drive.reservations.post(f"/selections/{sid}/prepare",
                                   json={"titles": [polar, dvd, "x"]}).status_code == 400
    assert drive.reservations.get(f"/selections/{sid}").json()["status"] == "requested"  # nothing changed
    prepared = drive.reservations.post(f"/selections/{sid}/prepare", json={"titles": [polar], "note": "bonne lecture"})
    assert prepared.status_code == 200, prepared.text
    body = prepared.json()
    assert body["status"] == "prepared" and [c["title_id"] for c in body["chosen"]] == [polar]
    drive.tap.wait("selection_prepared", selection_id=sid)
    placed = drive.tap.wait("reservation_placed", reservation_id=body["reservation_id"])[0]["data"]
    assert placed["channel"] == "phone"
    wait_for(lambda: drive.reservations.get(f"/selections/{sid}").json()["reservation_status"] == "allocated")
    assert drive.reservations.post(f"/selections/{sid}/prepare", json={"titles": [polar]}).status_code == 409

    patron = token("patron", "C31")
    mine = drive.reservations.get("/patrons/C31/selections", headers=patron).json()
    assert [s["id"] for s in mine] == [sid]
    assert drive.reservations.get(f"/selections/{sid}", headers=token("patron", "C32")).status_code == 403


def test_selection_rules_nothing_available_and_quota(drive, token):
    patron = token("patron", "C41")

    def ask(**fields):
        body = {"patron": "C41", "pickup_point": "central-youth", "tastes": "BD pour un enfant de 8 ans",
                "audience": "youth", "age_min": 7, "age_max": 9, "kinds": ["comic"], "documents": 3, **fields}
        return drive.reservations.post("/selections", headers=patron, json=body)

    upside_down = ask(age_min=10, age_max=8)
    assert upside_down.status_code == 400 and upside_down.json()["details"]["field"] == "age_max"
    assert ask(age_min=None, age_max=None).status_code == 400
    assert ask(documents=11).status_code == 400
    assert ask(kinds=["vinyl"]).status_code == 400
    assert drive.reservations.get("/patrons/C41/selections", headers=patron).json() == []
    first = ask()
    assert first.status_code == 201 and first.json()["channel"] == "web"
    over = ask(documents=8)  # 3 asked already hold their places: 7 left of 10
    assert over.status_code == 400 and over.json()["details"]["field"] == "documents"

    sid = first.json()["id"]
    anne, bruno = token("staff", "anne"), token("staff", "bruno")
    assert drive.reservations.post(f"/selections/{sid}/claim", headers=anne).status_code == 200
    assert drive.reservations.post(f"/selections/{sid}/claim", headers=bruno).status_code == 409
    assert drive.reservations.post(f"/selections/{sid}/nothing-available", headers=bruno,
                                   json={"note": "rien"}).status_code == 409
    done = drive.reservations.post(f"/selections/{sid}/nothing-available", headers=anne,
                                   json={"note": "Plus de BD pour cet âge : rappelez-nous la semaine prochaine"})
    assert done.status_code == 200 and done.json()["status"] == "nothing_available"
    outcome = drive.tap.wait("selection_prepared", selection_id=sid)[0]["data"]
    assert outcome["outcome"] == "nothing_available" and outcome["reservation_id"] is None
    seen = drive.reservations.get(f"/selections/{sid}", headers=patron).json()
    assert seen["note"].startswith("Plus de BD") and seen["chosen"] == []
    again = ask(documents=10)
    assert again.status_code == 201  # its places are free again
    # Withdrawn by the patron: it leaves the queue and gives its places back; another patron cannot withdraw it.
    again_id = again.json()["id"]
    assert drive.reservations.post(f"/selections/{again_id}/cancel", headers=token("patron", "C42")).status_code == 403
    withdrawn = drive.reservations.post(f"/selections/{again_id}/cancel", headers=patron)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "cancelled"
    assert drive.tap.wait("selection_cancelled", selection_id=again_id)[0]["data"]["cancelled_by"] == "patron"
    assert drive.reservations.get("/pickup-points/central-youth/selections").json() == []
    assert drive.reservations.post(f"/selections/{again_id}/prepare", json={"titles": ["x"]}).status_code == 409
    assert ask(documents=10).status_code == 201


def test_expiry_respects_a_day_closed_since_the_deadline_was_set(drive_factory):
    drive = drive_factory(reservations_extra={"EXPIRY_CHECK_SECONDS": 0.2})
    titles = [catalogue(drive, f"Échéance {n}", [(f"X-{n}", "central", f"R {n}")]) for n in range(2)]
    kept, gone = (ready_reservation(drive, f"C6{n}", titles[n]) for n in range(2))
    start_of_today = datetime.combine(today(), datetime.min.time(), PARIS)
    # Staff close today at the central library. A deadline that still falls today (set by a preparation racing
    # the closure, which moves those it finds at once) moves to the next opening day when the timer meets it.
    assert drive.reservations.post("/closed-days", json={"pickup_point": "central-adult", "day": today().isoformat(),
                                                         "reason": "dégât des eaux"}).status_code == 201
    engine = create_engine(drive.urls["reservations"])
    with engine.begin() as conn:
        conn.execute(update(Reservation).where(Reservation.id == kept)
                     .values(pickup_deadline=start_of_today + timedelta(seconds=1)))
        conn.execute(update(Reservation).where(Reservation.id == gone)
                     .values(pickup_deadline=start_of_today - timedelta(days=1)))
    drive.tap.wait("reservation_expired", reservation_id=gone)
    moved = wait_for(lambda: datetime.fromisoformat((r := drive.reservations.get(f"/reservations/{kept}").json())[
        "pickup_deadline"]) > start_of_today + timedelta(days=1) and r)
    engine.dispose()
    assert moved["status"] == "ready"
    assert drive.tap.of_type("reservation_expired", reservation_id=kept) == []
