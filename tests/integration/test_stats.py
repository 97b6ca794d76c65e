"""The library's figures against both services on the real broker and database: a small day at the drive
built over HTTP (reservations on the web and by phone, selections prepared or not, one collection after a
booked slot and an arrival, one no-show), then GET /stats and `drive stats` report exactly that."""

import json
import re
from collections import defaultdict
from datetime import datetime, timedelta

from openapi_spec_validator import validate
from rich.console import Console
from sqlalchemy import create_engine, update
from typer.testing import CliRunner

import services.cli as cli
from services.reservations.figures import COUNTERS
from services.reservations.models import Reservation, Selection
from services.reservations.opening_days import public_holidays
from tests.helpers import EVERY_DAY, PARIS, Client, coming_slots, today
from tests.integration.helpers import catalogue, ready_reservation

# central-adult's hours for the test: every day 09:00–12:00 and 14:00–19:00 in 30-min slots of 2 places.
CENTRAL_PLACES = (6 + 10) * 2
# neighbourhood's: Tuesday–Saturday, 10:00–12:30 and 14:00–18:00 in 15-min slots of 3 places.
NEIGHBOURHOOD_HOURS = {day: ["10:00-12:30", "14:00-18:00"]
                       for day in ("tuesday", "wednesday", "thursday", "friday", "saturday")}
NEIGHBOURHOOD_PLACES = (10 + 16) * 3


def set_columns(url: str, model, row_id: str, **values) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(update(model).where(model.id == row_id).values(**values))
    engine.dispose()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def build_a_day(drive, token) -> str:
    """The scenario; returns the day of the booked slot (YYYY-MM-DD)."""
    assert drive.reservations.call("PUT", "/pickup-points/central-adult/calendar", json={
        "opening_hours": EVERY_DAY, "slot_minutes": 30, "slot_capacity": 2}).status_code == 200
    assert drive.reservations.call("PUT", "/pickup-points/neighbourhood/calendar", json={
        "opening_hours": NEIGHBOURHOOD_HOURS, "slot_minutes": 15, "slot_capacity": 3}).status_code == 200
    titles = [catalogue(drive, f"Chiffre {n}", [(f"F-{n}", "central", f"R {n}")]) for n in range(4)]

    # On the web: ready, a slot booked, "I'm here", handed over 90 s later.
    patron = token("patron", "C1")
    collected_id = ready_reservation(drive, "C1", titles[0], headers=patron)
    slot = coming_slots(drive.reservations)[0]
    booked = drive.reservations.call("PUT", f"/reservations/{collected_id}/appointment", headers=patron,
                                     json={"starts_at": slot["starts_at"]})
    assert booked.status_code == 200, booked.text
    assert drive.reservations.post(f"/reservations/{collected_id}/arrived", headers=patron).status_code == 200
    collected = drive.reservations.post(f"/reservations/{collected_id}/collect")
    assert collected.status_code == 200 and collected.json()["channel"] == "web", collected.text
    set_columns(drive.urls["reservations"], Reservation, collected_id,
                arrived_at=moment(collected.json()["closed_at"]) - timedelta(seconds=90))

    # By phone: one placed and left alone; one at the youth counter never collected (its deadline passes).
    placed = drive.reservations.post("/reservations", json={"patron": "C2", "pickup_point": "central-adult",
                                                            "titles": [titles[1]]})
    assert placed.status_code == 201 and placed.json()["channel"] == "phone", placed.text
    expiring = ready_reservation(drive, "C3", titles[2], point="central-youth")
    set_columns(drive.urls["reservations"], Reservation, expiring,
                pickup_deadline=datetime.now(PARIS) - timedelta(minutes=1))
    drive.tap.wait("reservation_expired", reservation_id=expiring)

    # A selection asked by phone, prepared 12 minutes later (it becomes a phone reservation at the counter).
    asked = drive.reservations.post("/selections", json={
        "patron": "C4", "pickup_point": "central-adult", "tastes": "romans policiers", "audience": "adult",
        "kinds": ["book"], "documents": 1})
    assert asked.status_code == 201, asked.text
    prepared = drive.reservations.post(f"/selections/{asked.json()['id']}/prepare", json={"titles": [titles[3]]})
    assert prepared.status_code == 200, prepared.text
    set_columns(drive.urls["reservations"], Selection, asked.json()["id"],
                requested_at=moment(prepared.json()["prepared_at"]) - timedelta(minutes=12))

    # A selection asked on the web at the neighbourhood library: nothing fitting, said 30 minutes later.
    web = drive.reservations.post("/selections", headers=token("patron", "C5"), json={
        "patron": "C5", "pickup_point": "neighbourhood", "tastes": "poésie japonaise", "audience": "adult",
        "kinds": ["book"], "documents": 2})
    assert web.status_code == 201, web.text
    nothing = drive.reservations.post(f"/selections/{web.json()['id']}/nothing-available",
                                      json={"note": "Rien en rayon cette semaine"})
    assert nothing.status_code == 200, nothing.text
    set_columns(drive.urls["reservations"], Selection, web.json()["id"],
                requested_at=moment(nothing.json()["prepared_at"]) - timedelta(minutes=30))
    return moment(slot["starts_at"]).astimezone(PARIS).date().isoformat()


def test_stats_count_what_happened_per_point_channel_and_slot(drive_factory, token, monkeypatch):
    drive = drive_factory(reservations_extra={"EXPIRY_CHECK_SECONDS": 0.3})
    slot_day = build_a_day(drive, token)
    # From yesterday: a test that runs across midnight still finds everything (rows are summed over days).
    first, last = (today() - timedelta(days=1)).isoformat(), slot_day
    answer = drive.reservations.get("/stats", params={"from": first, "to": last})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["from"], report["to"]) == (first, last)
    assert report["rows"] == sorted(report["rows"], key=lambda r: (r["day"], r["pickup_point"], r["channel"]))

    sums: dict[tuple[str, str], dict] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    medians: dict[tuple[str, str, str], list] = defaultdict(list)
    for row in report["rows"]:
        key = (row["pickup_point"], row["channel"])
        assert any(row[name] for name in COUNTERS), row  # rows only where something happened
        for name in COUNTERS:
            sums[key][name] += row[name]
        for name in ("median_prepare_minutes", "median_wait_seconds"):
            if row[name] is not None:
                medians[key + (name,)].append(row[name])

    def counts(**given) -> dict:
        return {**dict.fromkeys(COUNTERS, 0), **given}

    assert dict(sums) == {
        ("central-adult", "web"): counts(reservations_placed=1, collections=1),
        ("central-adult", "phone"): counts(reservations_placed=2, selections_asked=1, selections_prepared=1),
        ("central-youth", "phone"): counts(reservations_placed=1, no_shows=1),
        ("neighbourhood", "web"): counts(selections_asked=1, selections_prepared=1, selections_nothing_available=1),
    }
    assert dict(medians) == {("central-adult", "web", "median_wait_seconds"): [90.0],
                             ("central-adult", "phone", "median_prepare_minutes"): [12.0],
                             ("neighbourhood", "web", "median_prepare_minutes"): [30.0]}

    # Slots: every day's places from the hours, the one booking (honoured since) on its slot's day.
    slots = {(s["day"], s["pickup_point"]): s for s in report["slots"]}
    days = [datetime.fromisoformat(first).date() + timedelta(days=n)
            for n in range((datetime.fromisoformat(last) - datetime.fromisoformat(first)).days + 1)]

    def opening(day) -> bool:
        return public_holidays(day.year).get(day) is None

    for day in days:
        central = slots.get((day.isoformat(), "central-adult"))
        if not opening(day):
            assert central is None
            continue
        booked = 1 if day.isoformat() == slot_day else 0
        assert central == {"day": day.isoformat(), "pickup_point": "central-adult", "places": CENTRAL_PLACES,
                           "booked": booked, "occupancy": round(booked / CENTRAL_PLACES, 4)}
        neighbourhood = slots.get((day.isoformat(), "neighbourhood"))
        if day.isoweekday() in (2, 3, 4, 5, 6):
            assert neighbourhood["places"] == NEIGHBOURHOOD_PLACES and neighbourhood["booked"] == 0
            assert neighbourhood["occupancy"] == 0
        else:
            assert neighbourhood is None
    assert {point for _, point in slots} <= {"central-adult", "central-youth", "neighbourhood"}

    totals = report["totals"]
    assert {name: totals[name] for name in COUNTERS} == counts(
        reservations_placed=4, selections_asked=2, selections_prepared=2, selections_nothing_available=1,
        collections=1, no_shows=1)
    assert totals["median_prepare_minutes"] == 21.0 and totals["median_wait_seconds"] == 90.0
    assert totals["booked"] == 1 and totals["places"] == sum(s["places"] for s in report["slots"])
    assert totals["occupancy"] == round(1 / totals["places"], 4)

    # Who may, and bad ranges.
    assert drive.reservations.get("/stats", params={"from": first, "to": last},
                                  headers=token("analyst", "analyst-1")).json() == report
    assert drive.reservations.get("/stats", params={"from": first, "to": last},
                                  headers=token("patron", "C1")).status_code == 403
    assert Client(drive.reservations.base).get("/stats", params={"from": first, "to": last}).status_code == 401

    def refused(params: dict, field: str) -> None:
        answer = drive.reservations.get("/stats", params=params)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body.get("details", {}).get("field") == field or field in body.get("fields", {}), body

    day = today()
    refused({"from": day.isoformat(), "to": (day - timedelta(days=1)).isoformat()}, "to")
    refused({"from": (day - timedelta(days=366)).isoformat(), "to": day.isoformat()}, "to")
    refused({"from": "2026-13-01", "to": day.isoformat()}, "from")
    refused({"from": day.isoformat(), "to": "demain"}, "to")
    refused({"from": day.isoformat()}, "to")
    year = drive.reservations.get("/stats", params={"from": (day - timedelta(days=365)).isoformat(),
                                                    "to": day.isoformat()})
    assert year.status_code == 200 and year.json()["totals"]["no_shows"] == 1

    # The API document says it.
    document = Client(drive.reservations.base).get("/openapi.json").json()
    validate(document)
    assert "Stats" in document["components"]["schemas"] and "get" in document["paths"]["/stats"]

    # `drive stats`: the same figures in tables, or as JSON.
    monkeypatch.setattr(cli, "console", Console(width=200))
    monkeypatch.delenv("DRIVE_TOKEN", raising=False)
    runner = CliRunner()
    url = drive.reservations.base
    shown = runner.invoke(cli.app, ["stats", "--from", first, "--to", last, "--url", url])
    assert shown.exit_code == 0, shown.output
    out = shown.output
    for title in ("Figures per day, pickup point and channel", "Slot occupancy", "Totals"):
        assert title in out
    # placed, asked, prepared, nothing available, median prep., collected, no-shows, median wait
    assert re.search(r"central-youth\s*│\s*phone\s*│\s*1\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*-\s*│\s*0\s*│\s*1\s*│\s*-",
                     out), out
    assert "neighbourhood" in out and "central-adult" in out
    assert re.search(rf"{slot_day}\s*│\s*central-adult\s*│\s*{CENTRAL_PLACES}\s*│\s*1\s*│\s*3\.1%", out), out
    for label, value in (("reservations placed", "4"), ("collections", "1"), ("no-shows", "1"),
                         ("median time to prepare \\(min\\)", "21"), ("median wait at the counter \\(s\\)", "90"),
                         ("slot places booked", "1")):
        assert re.search(rf"{label}\s*│\s*{value}\s*│", out), (label, out)
    as_json = runner.invoke(cli.app, ["stats", "--from", first, "--to", last, "--url", url, "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output) == report
    upside_down = runner.invoke(cli.app, ["stats", "--from", last, "--to", first, "--url", url])
    assert upside_down.exit_code == 2 and "before" in upside_down.output
    nobody = runner.invoke(cli.app, ["stats", "--url", "http://127.0.0.1:9"])
    assert nobody.exit_code == 3 and "does not answer" in nobody.output  # unreachable
