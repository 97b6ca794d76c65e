"""Continuity mode and reopening: suspended reminders and fines, due dates moved off a closure and back."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, update

from services.reservations.models import Loan
from tests.helpers import wait_for
from tests.integration.helpers import catalogue


def lend(drive, card: str, barcode: str) -> str:
    title = catalogue(drive, f"Titre {barcode}", [(barcode, "central", "R 1")])
    rid = drive.reservations.post("/reservations", json={"patron": card, "pickup_point": "central-adult",
                                                         "titles": [title]}).json()["id"]
    wait_for(lambda: drive.reservations.get(f"/reservations/{rid}").json()["status"] == "allocated")
    assert drive.reservations.post(f"/reservations/{rid}/ready").status_code == 200
    assert drive.reservations.post(f"/reservations/{rid}/collect").status_code == 200
    return rid


def set_due(drive, when: datetime, card: str | None = None) -> None:
    engine = create_engine(drive.urls["reservations"])
    with engine.begin() as conn:
        query = update(Loan).values(due_at=when)
        conn.execute(query.where(Loan.patron == card) if card else query)
    engine.dispose()


def due_dates(drive) -> dict:
    engine = create_engine(drive.urls["reservations"])
    with engine.connect() as conn:
        found = dict(conn.execute(select(Loan.patron, Loan.due_at)).all())
    engine.dispose()
    return found


def test_suspension_freezes_fines_and_reminders_then_resumes(drive_factory, token):
    drive = drive_factory(reservations_extra={"OVERDUE_CHECK_SECONDS": 0.2, "FINE_CENTS_PER_DAY": 10,
                                              "GRACE_DAYS_AFTER_SUSPENSION": 3})
    lend(drive, "C20", "S-1")
    now = datetime.now(UTC)
    set_due(drive, now - timedelta(days=10))  # overdue since 10 days
    drive.tap.wait("loan_overdue")
    started = drive.reservations.post("/continuity/suspensions", json={
        "from": (now - timedelta(days=6)).isoformat(), "until": (now + timedelta(days=20)).isoformat(),
        "reason": "confinement"})
    assert started.status_code == 201, started.text
    changed = drive.tap.wait("continuity_policy_changed")[0]["data"]
    assert changed["suspended"] and changed["reason"] == "confinement" and changed["grace_days"] == 3
    view = drive.reservations.get("/continuity").json()
    assert view["suspended"] and view["current"]["reason"] == "confinement"
    account = drive.reservations.get("/patrons/C20/account").json()
    assert account["fines_cents"] == 30  # 4 days before the suspension began (10 − 6, the 6th day not counted)
    first = drive.tap.of_type("loan_overdue")
    assert [e["data"]["reminder_step"] for e in first] == [2]  # 10 days overdue: steps 1 and 7 passed
    set_due(drive, now - timedelta(days=30))  # step 3 (21 days) would be due, but not during a suspension
    assert drive.reservations.post("/continuity/suspensions", json={
        "from": now.isoformat(), "until": (now + timedelta(days=2)).isoformat(), "reason": "again"}).status_code == 409
    with pytest.raises(AssertionError):  # several timer runs: no reminder while suspended
        drive.tap.wait("loan_overdue", count=2, timeout=1.2)

    resumed = drive.reservations.post("/continuity/resume")
    assert resumed.status_code == 200 and resumed.json()["resumed_at"]
    assert drive.tap.wait("continuity_policy_changed", count=2)[-1]["data"]["suspended"] is False
    assert drive.reservations.get("/continuity").json()["suspended"] is False
    assert drive.reservations.post("/continuity/resume").status_code == 409


def test_bad_suspensions_are_refused(drive, token):
    now = datetime.now(UTC)
    cases = [({"from": now.isoformat(), "until": (now - timedelta(days=1)).isoformat(), "reason": "x" * 5}, 400),
             ({"from": now.isoformat(), "until": (now + timedelta(days=1)).isoformat()}, 400),
             ({"from": "demain", "until": (now + timedelta(days=1)).isoformat(), "reason": "fermeture"}, 400)]
    for body, status in cases:
        assert drive.reservations.post("/continuity/suspensions", json=body).status_code == status, body
    patron = token("patron", "C1")
    assert drive.reservations.post("/continuity/suspensions", headers=patron, json=cases[0][0]).status_code == 403
    assert drive.reservations.get("/continuity", headers=patron).status_code == 403
    assert drive.reservations.get("/continuity").json()["suspensions"] == []
    assert drive.tap.of_type("continuity_policy_changed") == []


def test_due_dates_moved_off_a_closure_previewed_applied_and_undone(drive):
    for card, barcode in (("C31", "M-1"), ("C32", "M-2")):
        lend(drive, card, barcode)
    closed_from, closed_until = datetime(2026, 3, 17, tzinfo=UTC), datetime(2026, 5, 11, tzinfo=UTC)
    set_due(drive, datetime(2026, 4, 2, 16, tzinfo=UTC), "C31")
    set_due(drive, datetime(2026, 6, 2, 16, tzinfo=UTC), "C32")  # after the closure: untouched
    before = due_dates(drive)
    request = {"closed_from": closed_from.isoformat(), "closed_until": closed_until.isoformat(), "rule": "spread",
               "opening_days": 3}
    preview = drive.reservations.post("/due-date-shifts/preview", json=request).json()
    assert preview["preview"] and [c["patron"] for c in preview["changes"]] == ["C31"]
    assert preview["changes"][0]["new"].startswith("2026-05-12")  # the first opening day after reopening
    assert due_dates(drive) == before  # a preview changes nothing
    applied = drive.reservations.post("/due-date-shifts", json=request)
    assert applied.status_code == 201 and applied.json()["patrons"] == 1
    shifted = drive.tap.wait("due_dates_shifted")
    assert len(shifted) == 1 and shifted[0]["data"]["patron"] == "C31" and not shifted[0]["data"]["undone"]
    assert due_dates(drive)["C31"].date().isoformat() == "2026-05-12" and due_dates(drive)["C32"] == before["C32"]
    undone = drive.reservations.post(f"/due-date-shifts/{applied.json()['id']}/undo")
    assert undone.status_code == 200 and undone.json()["patrons"] == 1
    assert due_dates(drive) == before
    assert drive.tap.wait("due_dates_shifted", count=2)[-1]["data"]["undone"] is True
    assert drive.reservations.post(f"/due-date-shifts/{applied.json()['id']}/undo").status_code == 409
    bad = {**request, "rule": "fixed", "date": "2026-04-01"}
    assert drive.reservations.post("/due-date-shifts", json=bad).status_code == 400
