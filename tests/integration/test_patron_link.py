"""The ready message's link, end to end inside one process: reservations, inventory and notifications on the real
broker and database (PostgreSQL and SQLite), the message read from the file sink as a patron's phone would
show it. The token in its fragment opens that one reservation — read it, book a slot, say "I'm here" — and
nothing else of any service; it expires, cannot be altered, and closes with the reservation. Claims are events."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nameko.testing.utils import find_free_port
from sqlalchemy import update

from services.common.auth import RESERVATION_LINK, read_reservation_link, reservation_link_token
from services.common.database import make_engine
from services.common.messaging import declare_topology
from services.notifications.service import NotificationsService
from services.reservations.models import Reservation
from tests.helpers import EVERY_DAY, Client, coming_slots, wait_for
from tests.integration.helpers import catalogue, on_both_databases, ready_reservation  # noqa: F401  (both databases)

pytestmark = pytest.mark.time_limit(90)
WEB_URL = "https://drive.bibliotheque.test"
LINK = re.compile(r"https?://[^\s\"]+")


@pytest.fixture
def post_office(make_database, rabbit_config, container_factory, tmp_path, token):
    """Notifications on the file sink (the embedded default: no SMTP, no SMS gateway), links based on WEB_URL."""
    sink = tmp_path / "messages"

    def start() -> Client:
        config = {"AMQP_URI": rabbit_config["AMQP_URI"], "DB_URL": make_database("notifications"),
                  "WEB_SERVER_ADDRESS": f"127.0.0.1:{find_free_port()}", "NOTIFY_FILE_SINK_DIR": str(sink),
                  "SMTP_HOST": "", "SMS_GATEWAY_URL": "", "WEB_URL": WEB_URL, "NOTIFY_SEND_SECONDS": 0.1,
                  "SMS_QUIET_START": "00:00", "SMS_QUIET_END": "00:00",  # SMS at any hour the suite runs
                  "OUTBOX_SWEEP_SECONDS": 0.3}
        declare_topology([NotificationsService], config)
        container_factory(NotificationsService, config).start()
        return Client(f"http://{config['WEB_SERVER_ADDRESS']}", token("staff"))

    start.sink = sink  # type: ignore[attr-defined]
    return start


def sunk(sink: Path, channel: str, to: str) -> list[dict]:
    path = sink / f"{channel}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [m for m in map(json.loads, lines) if m["to"] == to]


def link_sent(sink: Path, channel: str, to: str) -> str:
    """The one link of the message the patron received."""
    message = wait_for(lambda: sunk(sink, channel, to), timeout=15, what=f"the {channel} to {to} in the sink")[0]
    links = LINK.findall(message["body"])
    assert len(links) == 1, message["body"]
    return links[0]


def bearer(link: str) -> dict:
    """What the patron's page does with the link: the fragment's token, as the bearer of the API calls."""
    assert link.startswith(f"{WEB_URL}/r#"), f"{link} is not the patron page of WEB_URL with a token in its fragment"
    return {"Authorization": f"Bearer {link.partition('#')[2]}"}


def test_the_ready_messages_link_opens_its_reservation_without_a_login(drive, post_office, token):
    notifications = post_office()
    drive.reservations.call("PUT", "/pickup-points/central-adult/calendar", json={"opening_hours": EVERY_DAY})
    for card, contact in (("C31", {"email": "c31@example.org"}),
                          ("C32", {"phone": "0612345670", "preferred_channel": "sms", "sms_consent": True,
                                   "language": "en"})):
        assert notifications.call("PUT", f"/patrons/{card}/contact", json=contact).status_code == 200
    title = catalogue(drive, "La nuit du nord", [("LN-1", "central", "R HOL 1"), ("LN-2", "central", "R HOL 2")])
    by_mail, by_sms = ready_reservation(drive, "C31", title), ready_reservation(drive, "C32", title)
    mailed, texted = link_sent(post_office.sink, "email", "c31@example.org"), link_sent(post_office.sink, "sms",
                                                                                        "+33612345670")
    link = bearer(mailed)
    assert read_reservation_link(None, link["Authorization"][7:]).reservation_id == by_mail

    seen = drive.reservations.get(f"/reservations/{by_mail}", headers=link)
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["id"] == by_mail and body["status"] == "ready" and body["hold_shelf"] == "H-C31"
    assert "patron" not in body and "claimed_by" not in body  # nothing of the card, nor who prepared it
    assert [line["title"] for line in body["lines"]] == ["La nuit du nord"]
    assert drive.reservations.get(f"/reservations/{by_mail}").json()["patron"] == "C31"  # staff still see it

    slots = drive.reservations.get("/pickup-points/central-adult/slots", headers=link, params={
        "from": (datetime.now(UTC) + timedelta(days=1)).date().isoformat(),
        "to": (datetime.now(UTC) + timedelta(days=3)).date().isoformat()})
    assert slots.status_code == 200 and slots.json()  # open to anyone: the page lists the free slots
    free = [s["starts_at"] for s in coming_slots(drive.reservations) if s["free"]][0]
    booked = drive.reservations.call("PUT", f"/reservations/{by_mail}/appointment", headers=link,
                                     json={"starts_at": free})
    assert booked.status_code == 200, booked.text
    assert booked.json()["booked_by"] == "patron"
    appointment = drive.reservations.get(f"/reservations/{by_mail}/appointment", headers=link).json()
    assert datetime.fromisoformat(appointment["starts_at"]) == datetime.fromisoformat(free)

    arrived = drive.reservations.post(f"/reservations/{by_mail}/arrived", headers=link)
    assert arrived.status_code == 200, arrived.text
    assert "patron" not in arrived.json() and arrived.json()["arrived_at"]
    told = drive.tap.wait("patron_arrived", reservation_id=by_mail)[0]["data"]
    assert told["signalled_by"] == "patron" and told["patron"] == "C31" and told["slot_starts_at"]
    assert drive.reservations.call("DELETE", f"/reservations/{by_mail}/appointment", headers=link).status_code == 200

    # The SMS's link, in English, works the same for its own reservation.
    sms = drive.reservations.post(f"/reservations/{by_sms}/arrived", headers=bearer(texted))
    assert sms.status_code == 200, sms.text
    assert drive.tap.wait("patron_arrived", reservation_id=by_sms)[0]["data"]["signalled_by"] == "patron"
    assert "There? Tell us: " + texted in sunk(post_office.sink, "sms", "+33612345670")[0]["body"]


def test_a_link_opens_its_own_reservation_only_and_no_other_route_of_any_service(drive_factory, post_office):
    drive = drive_factory(bibliobus_extra={})
    notifications = post_office()
    title = catalogue(drive, "Le phare de minuit", [("PM-1", "central", "R PH 1"), ("PM-2", "central", "R PH 2")])
    mine, theirs = ready_reservation(drive, "C41", title), ready_reservation(drive, "C42", title)
    link = {"Authorization": f"Bearer {reservation_link_token(None, mine, datetime.now(UTC) + timedelta(days=3))}"}
    assert drive.reservations.get(f"/reservations/{mine}", headers=link).status_code == 200

    for method, path in (("GET", ""), ("POST", "/arrived"), ("GET", "/appointment"), ("PUT", "/appointment"),
                         ("DELETE", "/appointment")):
        refused = drive.reservations.call(method, f"/reservations/{theirs}{path}", headers=link,
                                          json={"starts_at": "2030-01-01T10:00:00+00:00"} if method == "PUT" else None)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["message"] == "this link is for another reservation"

    values = {"reservation_id": mine, "card": "C41", "point_id": "central-adult", "stop_id": "s1",
              "title_id": title, "barcode": "PM-1"}
    tried = 0
    for name, client in (("reservations", drive.reservations), ("inventory", drive.inventory),
                         ("notifications", notifications), ("bibliobus", drive.bibliobus)):
        document = client.get("/openapi.json").json()
        for template, operations in document["paths"].items():
            for method, operation in operations.items():
                if "security" not in operation:
                    continue  # open to all (health, metrics, this document): no token is read
                roles = operation["description"].removeprefix("Roles: ").rstrip(".").split(", ")
                if RESERVATION_LINK in roles:
                    continue  # its five routes, above, and the free slots its page books among
                path = re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "x1"), template)
                answer = client.call(method.upper(), path, headers=link)
                assert answer.status_code == 403, (name, method, template, answer.status_code, answer.text)
                tried += 1
    assert tried > 50  # every service's routes were tried, not an empty document


def test_an_expired_altered_or_closed_link_is_refused(drive, token):
    title = catalogue(drive, "Les oiseaux de mer", [("OM-1", "central", "R OI 1"), ("OM-2", "central", "R OI 2"),
                                                    ("OM-3", "central", "R OI 3")])
    collected, cancelled, overdue = (ready_reservation(drive, card, title) for card in ("C51", "C52", "C53"))

    def link(rid: str, until: datetime | None = None) -> dict:
        until = until or datetime.now(UTC) + timedelta(days=3)
        return {"Authorization": f"Bearer {reservation_link_token(None, rid, until)}"}

    expired = drive.reservations.get(f"/reservations/{collected}",
                                     headers=link(collected, datetime.now(UTC) - timedelta(seconds=1)))
    assert expired.status_code == 401 and "expired" in expired.json()["message"], expired.text
    token_ = link(collected)["Authorization"][7:]
    payload, signature = token_.split(".")
    forged = reservation_link_token({"PATRON_LINK_SECRET": "not-the-service-secret-0123456789ab"}, collected,
                                    datetime.now(UTC) + timedelta(days=3))
    for bad in (f"{payload}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}", f"{payload[:-3]}.{signature}",
                forged):
        altered = drive.reservations.post(f"/reservations/{collected}/arrived",
                                          headers={"Authorization": f"Bearer {bad}"})
        assert altered.status_code == 401 and altered.json()["error"] == "unauthorized", altered.text

    assert drive.reservations.post(f"/reservations/{collected}/collect").status_code == 200
    assert drive.reservations.post(f"/reservations/{cancelled}/cancel").status_code == 200
    engine = make_engine(drive.urls["reservations"], pool_size=1)  # as a service does (SQLite: its busy wait)
    with engine.begin() as conn:
        conn.execute(update(Reservation).where(Reservation.id == overdue)
                     .values(pickup_deadline=datetime.now(UTC) - timedelta(minutes=1)))
    engine.dispose()
    for rid, named in ((collected, "collected"), (cancelled, "cancelled"), (overdue, "waited until")):
        for method, path in (("GET", ""), ("POST", "/arrived"), ("GET", "/appointment")):
            refused = drive.reservations.call(method, f"/reservations/{rid}{path}", headers=link(rid))
            assert refused.status_code == 409, (rid, method, path, refused.text)
            assert refused.json()["error"] == "link_closed" and named in refused.json()["message"]
    # Staff, and the patron signed in, still read them.
    assert drive.reservations.get(f"/reservations/{collected}").json()["status"] == "collected"
    assert drive.reservations.get(f"/reservations/{overdue}", headers=token("patron", "C53")).status_code == 200


def test_claims_and_releases_are_published(drive, token):
    title = catalogue(drive, "Le vent du large", [("VL-1", "central", "R VE 1")])
    placed = drive.reservations.post("/reservations", json={"patron": "C61", "pickup_point": "central-youth",
                                                            "titles": [title]})
    rid = placed.json()["id"]
    wait_for(lambda: drive.reservations.get(f"/reservations/{rid}").json()["status"] == "allocated")
    assert drive.reservations.post(f"/reservations/{rid}/claim").json()["claimed_by"] == "staff-1"
    claimed = drive.tap.wait("reservation_claimed", reservation_id=rid)[0]["data"]
    assert claimed == {"reservation_id": rid, "claimed_by": "staff-1", "pickup_point": {
        "id": "central-youth", "name": claimed["pickup_point"]["name"], "kind": "counter", "site": "central"}}
    assert drive.reservations.post(f"/reservations/{rid}/claim").status_code == 200  # already theirs: no news
    other = token("staff", "staff-2")
    taken = drive.reservations.post(f"/reservations/{rid}/claim", headers=other)
    assert taken.status_code == 409 and drive.reservations.post(f"/reservations/{rid}/release",
                                                                headers=other).status_code == 409
    assert drive.reservations.post(f"/reservations/{rid}/release").json()["claimed_by"] is None
    released = drive.tap.wait("reservation_released", reservation_id=rid)[0]["data"]
    assert released["claimed_by"] == "staff-1" and released["pickup_point"]["id"] == "central-youth"
    assert drive.reservations.post(f"/reservations/{rid}/release").status_code == 200  # nobody had it: no news
    assert drive.reservations.post(f"/reservations/{rid}/claim", headers=other).status_code == 200
    drive.tap.wait("reservation_claimed", count=2, reservation_id=rid)
    assert [m["data"]["claimed_by"] for m in drive.tap.of_type("reservation_claimed", reservation_id=rid)] == [
        "staff-1", "staff-2"]
    assert len(drive.tap.of_type("reservation_released", reservation_id=rid)) == 1
