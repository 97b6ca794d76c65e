"""A day closed after deadlines were set: the pickup deadlines and due dates on it move at once to the next
opening day, announced as any due-date shift; a closure that ends before it starts is refused."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from nameko.testing.utils import find_free_port
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url

from services.reservations.models import DueDateShift, Loan, Outbox, Reservation
from services.reservations.service import ReservationsService
from tests.helpers import EVERY_DAY, PARIS, Client, wait_for
from tests.integration.helpers import catalogue, on_both_databases, ready_reservation  # noqa: F401  (both databases)

pytestmark = pytest.mark.time_limit(60)


def postgres_only(drive) -> None:
    if not drive.urls["reservations"].startswith("postgresql"):
        pytest.skip("SQLite takes its write lock at BEGIN: two closures never interleave there")


def deadline_of(drive, rid: str) -> datetime:
    return datetime.fromisoformat(drive.reservations.get(f"/reservations/{rid}").json()["pickup_deadline"])


def next_opening_close(drive, point: str, day: date) -> datetime:
    """Closing time of the first day after `day` the point opens, as its calendar says."""
    days = drive.reservations.get(f"/pickup-points/{point}/calendar", params={
        "from": (day + timedelta(days=1)).isoformat(), "to": (day + timedelta(days=14)).isoformat()}).json()["days"]
    return datetime.fromisoformat(next(d for d in days if d["open"])["closes_at"])


def close(client: Client, point: str, day: date) -> dict:
    closed = client.post("/closed-days", json={"pickup_point": point, "day": day.isoformat(), "reason": "grève"})
    assert closed.status_code == 201, closed.text
    return closed.json()


def loan_due(drive, card: str) -> datetime:
    return datetime.fromisoformat(drive.reservations.get(f"/patrons/{card}/loans").json()[0]["due_at"])


def test_closing_a_day_moves_its_deadlines_and_due_dates_at_once(drive, token):
    for point in ("central-adult", "central-youth"):
        drive.reservations.call("PUT", f"/pickup-points/{point}/calendar", json={"opening_hours": EVERY_DAY})
    titles = [catalogue(drive, f"Fermé samedi {n}", [(f"FS-{n}", "central", f"R {n}")]) for n in range(3)]
    mine = ready_reservation(drive, "C41", titles[0])
    youth = ready_reservation(drive, "C42", titles[1], point="central-youth")
    lent = ready_reservation(drive, "C41", titles[2])
    assert drive.reservations.post(f"/reservations/{lent}/collect").status_code == 200
    deadline = deadline_of(drive, mine)
    day = deadline.astimezone(PARIS).date()
    assert deadline_of(drive, youth).astimezone(PARIS).date() == day
    engine = create_engine(drive.urls["reservations"])
    with engine.begin() as conn:  # the loan falls due that day too
        conn.execute(update(Loan).values(due_at=deadline))
    expected = next_opening_close(drive, "central-adult", day)

    # Staff close that day at the central library's adult counter: what falls on it there moves at once.
    closed = close(drive.reservations, "central-adult", day)
    assert deadline_of(drive, mine) == expected
    assert loan_due(drive, "C41") == expected
    assert closed["dates_moved"] == 2 and closed["due_date_shift"], closed
    assert deadline_of(drive, youth) == deadline  # another point: not closed
    shifted = drive.tap.wait("due_dates_shifted", patron="C41")[0]["data"]  # one event for the patron
    assert shifted["shift_id"] == closed["due_date_shift"] and shifted["undone"] is False
    assert [(r["reservation_id"], datetime.fromisoformat(r["previous_pickup_deadline"]),
             datetime.fromisoformat(r["pickup_deadline"])) for r in shifted["reservations"]] == [
        (mine, deadline, expected)]
    assert [datetime.fromisoformat(ln["due_at"]) for ln in shifted["loans"]] == [expected]
    assert shifted["loans"][0]["title"] == "Fermé samedi 2"

    # The patron books a slot on the next opening day (refused before: "the reservation waits only until …").
    patron = token("patron", "C41")
    slot = drive.reservations.get("/pickup-points/central-adult/slots", headers=patron, params={
        "from": expected.astimezone(PARIS).date().isoformat(), "to": expected.astimezone(PARIS).date().isoformat()})
    booked = drive.reservations.call("PUT", f"/reservations/{mine}/appointment", headers=patron,
                                     json={"starts_at": slot.json()[0]["starts_at"]})
    assert booked.status_code == 200, booked.text

    # Then the whole network closes that day: the youth counter's deadline moves; what moved already stays.
    network = close(drive.reservations, "*", day)
    assert network["dates_moved"] == 1, network
    assert deadline_of(drive, youth) == next_opening_close(drive, "central-youth", day)
    assert drive.tap.wait("due_dates_shifted", patron="C42")[0]["data"]["reservations"][0]["reservation_id"] == youth
    assert deadline_of(drive, mine) == expected
    assert len(drive.tap.of_type("due_dates_shifted", patron="C41")) == 1
    # A day with nothing on it: nothing moves, no shift is recorded.
    quiet = close(drive.reservations, "*", day + timedelta(days=30))
    assert quiet["dates_moved"] == 0 and quiet["due_date_shift"] is None
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(DueDateShift)).scalar() == 2
    engine.dispose()


def _blocked_on_locks(url: str) -> int:
    admin = create_engine(url)
    with admin.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
                                  "AND wait_event_type = 'Lock'"), {"db": make_url(url).database}).scalar()
    admin.dispose()
    return count


@pytest.mark.parametrize("first", ["central-adult", "*"])
def test_two_closures_of_one_day_on_two_replicas_move_a_deadline_once(drive_factory, container_factory, first):
    """The point's closure and the network's, on two replicas, at once: the test holds the reservation's row
    until the first waits on it and the second on the first, in a chosen order; one moves it, one event."""
    drive = drive_factory()
    postgres_only(drive)
    other = {**drive.config["reservations"], "WEB_SERVER_ADDRESS": f"127.0.0.1:{find_free_port()}"}
    container_factory(ReservationsService, other).start()
    replicas = [drive.reservations, Client(f"http://{other['WEB_SERVER_ADDRESS']}", drive.reservations.headers)]
    drive.reservations.call("PUT", "/pickup-points/central-adult/calendar", json={"opening_hours": EVERY_DAY})
    rid = ready_reservation(drive, "C43", catalogue(drive, "Deux fermetures", [("DF-1", "central", "R 1")]))
    deadline = deadline_of(drive, rid)
    day = deadline.astimezone(PARIS).date()
    expected = next_opening_close(drive, "central-adult", day)

    url = drive.urls["reservations"]
    holder = create_engine(url)
    answers: dict[str, dict] = {}
    points = [first, "*" if first == "central-adult" else "central-adult"]
    with holder.connect() as conn:
        conn.execute(select(Reservation.id).where(Reservation.id == rid).with_for_update())
        threads = []
        for n, (point, replica) in enumerate(zip(points, replicas, strict=True)):
            threads.append(threading.Thread(target=lambda p=point, r=replica: answers.update({p: close(r, p, day)})))
            threads[-1].start()
            wait_for(lambda n=n: _blocked_on_locks(url) == n + 1, what=f"{n + 1} closure(s) waiting on the row")
        conn.rollback()  # let them go: the first in line moves the deadline, the other finds it moved
    for thread in threads:
        thread.join(timeout=15)
    holder.dispose()
    assert answers[points[0]]["dates_moved"] == 1 and answers[points[1]]["dates_moved"] == 0, answers
    assert deadline_of(drive, rid) == expected
    engine = create_engine(url)
    with engine.connect() as conn:
        announced = conn.execute(select(func.count()).select_from(Outbox).where(
            Outbox.routing_key.like("%due_dates_shifted%"))).scalar()
        shifts = conn.execute(select(func.count()).select_from(DueDateShift)).scalar()
    engine.dispose()
    assert announced == 1 and shifts == 1


def test_a_closure_that_ends_before_it_starts_is_refused(drive):
    rid = ready_reservation(drive, "C44", catalogue(drive, "À l'envers", [("AE-1", "central", "R 1")]))
    assert drive.reservations.post(f"/reservations/{rid}/collect").status_code == 200
    before = loan_due(drive, "C44")
    closed_from = before - timedelta(days=2)
    backwards = {"closed_from": closed_from.isoformat(), "closed_until": (closed_from - timedelta(days=3)).isoformat(),
                 "rule": "spread", "opening_days": 2}
    empty = {**backwards, "closed_until": closed_from.isoformat()}
    for body in (backwards, empty):
        for path in ("/due-date-shifts/preview", "/due-date-shifts"):
            refused = drive.reservations.post(path, json=body)
            assert refused.status_code == 400, (path, refused.status_code, refused.text)
            assert refused.json()["details"]["field"] == "closed_until", refused.json()
    suspension = drive.reservations.post("/continuity/suspensions", json={
        "from": datetime.now(UTC).isoformat(), "until": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "reason": "à l'envers"})
    assert suspension.status_code == 400 and suspension.json()["details"]["field"] == "until", suspension.text
    # Nothing was changed or recorded.
    assert loan_due(drive, "C44") == before
    assert drive.reservations.get("/continuity").json()["suspensions"] == []
    engine = create_engine(drive.urls["reservations"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(DueDateShift)).scalar() == 0
    engine.dispose()
    assert drive.tap.of_type("due_dates_shifted") == []


def _waiting(url: str, query_starts: str) -> int:
    """Backends of this database waiting on a lock in a statement that starts so."""
    admin = create_engine(url)
    with admin.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = "
                                  "'Lock' AND query ILIKE :q"), {"db": make_url(url).database,
                                                                 "q": query_starts + "%"}).scalar()
    admin.dispose()
    return count


@pytest.mark.parametrize("first", ["closure", "preparation"])
def test_a_day_closed_while_a_reservation_is_made_ready_for_it(drive, first):
    """A preparation sets a deadline on the day being closed: whichever of the two goes first, the other sees
    it (the deadline is set knowing the closure, or the closure finds the deadline and moves it)."""
    postgres_only(drive)
    drive.reservations.call("PUT", "/pickup-points/central-adult/calendar", json={"opening_hours": EVERY_DAY})
    titles = [catalogue(drive, f"En même temps {n}", [(f"EM-{n}", "central", f"R {n}")]) for n in range(2)]
    placed = drive.reservations.post("/reservations", json={"patron": "C45", "pickup_point": "central-adult",
                                                            "titles": [titles[0]]}).json()["id"]
    wait_for(lambda: drive.reservations.get(f"/reservations/{placed}").json()["status"] == "allocated")
    busy = ready_reservation(drive, "C46", titles[1])  # already ready on that day: the closure moves it
    day = deadline_of(drive, busy).astimezone(PARIS).date()
    expected = next_opening_close(drive, "central-adult", day)
    # The test holds the one that goes first in the middle of its transaction: the closure at the busy
    # reservation's row, the preparation at its event (its deadline computed); then the other one starts.
    hold = (select(Reservation.id).where(Reservation.id == busy).with_for_update() if first == "closure"
            else text("LOCK TABLE outbox IN EXCLUSIVE MODE"))
    answers: dict = {}
    steps = {"closure": lambda: answers.update(closure=close(drive.reservations, "central-adult", day)),
             "preparation": lambda: answers.update(preparation=drive.reservations.post(
                 f"/reservations/{placed}/ready"))}
    held_at = "UPDATE reservations" if first == "closure" else "INSERT INTO outbox"
    url = drive.urls["reservations"]
    holder = create_engine(url)
    with holder.connect() as conn:
        conn.execute(hold)
        threads = [threading.Thread(target=steps[first])]
        threads[0].start()
        wait_for(lambda: _waiting(url, held_at) == 1, what=f"the {first} held at {held_at}")
        second = "preparation" if first == "closure" else "closure"
        threads.append(threading.Thread(target=steps[second]))
        threads[1].start()
        # It waits for the first to end (or, were they not serialised, passes it: done, or held too).
        wait_for(lambda: _waiting(url, "SELECT pg_advisory") == 1 or _waiting(url, held_at) == 2
                 or second in answers, what=f"the {second} waiting")
        conn.rollback()
    for thread in threads:
        thread.join(timeout=15)
    holder.dispose()
    ready = answers["preparation"]
    assert ready.status_code == 200, ready.text
    assert deadline_of(drive, placed) == expected
    if first == "closure":  # made ready knowing the closure
        assert datetime.fromisoformat(ready.json()["pickup_deadline"]) == expected
        assert answers["closure"]["dates_moved"] == 1
    else:  # made ready on the day, then moved by the closure, and the patron told
        assert datetime.fromisoformat(ready.json()["pickup_deadline"]).astimezone(PARIS).date() == day
        assert answers["closure"]["dates_moved"] == 2
        drive.tap.wait("due_dates_shifted", patron="C45")
