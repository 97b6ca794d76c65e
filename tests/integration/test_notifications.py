"""Notifications against the real broker and PostgreSQL, a real SMTP server and an SMS gateway on loopback."""

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from nameko.testing.utils import find_free_port
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.orm import Session

from services.common.auth import read_reservation_link
from services.common.messaging import declare_topology
from services.common.migrate import upgrade
from services.notifications.models import ContactRecord, Delivery, Inbox, PolicyState
from services.notifications.service import NotificationsService
from tests.helpers import Client, EventTap, wait_for
from tests.integration.helpers import publish

POINT = {"id": "neighbourhood", "name": "Médiathèque de quartier", "kind": "library", "site": "neighbourhood"}
LINES = [{"line_id": "l1", "title_id": "t1", "title": "La nuit du nord"},
         {"line_id": "l2", "title_id": "t2", "title": "Le phare de minuit"}]


@pytest.fixture
def db_kind():
    """PostgreSQL unless a test asks for both (`@pytest.mark.parametrize("db_kind", BOTH)`)."""
    return "postgresql"


BOTH = ["postgresql", "sqlite"]


@pytest.fixture
def post_office(make_database, rabbit_config, container_factory, outside, token, db_kind, tmp_path):
    mailbox, smtp_port, gateway = outside
    if db_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'notifications.db'}"
        upgrade("notifications", url)
    else:
        url = make_database("notifications")
    containers = []

    def start(**extra):
        config = {"AMQP_URI": rabbit_config["AMQP_URI"], "DB_URL": url,
                  "WEB_SERVER_ADDRESS": f"127.0.0.1:{find_free_port()}", "SMTP_HOST": "127.0.0.1",
                  "SMTP_PORT": smtp_port, "NOTIFY_FROM": "Médiathèque <drive@bibliotheque.example>",
                  "SMS_GATEWAY_URL": gateway.url, "SMS_GATEWAY_TOKEN": "gw-secret", "NOTIFY_SEND_SECONDS": 0.1,
                  "NOTIFY_RETRY_BASE_SECONDS": 0.05, "OUTBOX_SWEEP_SECONDS": 0.3, **extra}
        declare_topology([NotificationsService], config)
        container = container_factory(NotificationsService, config)
        container.start()
        containers.append(container)
        return Client(f"http://{config['WEB_SERVER_ADDRESS']}", token("staff"))

    class Office:
        pass

    office = Office()
    office.start, office.mailbox, office.gateway, office.url = start, mailbox, gateway, url
    office.containers = containers
    office.amqp = rabbit_config["AMQP_URI"]
    office.tap = EventTap(rabbit_config["AMQP_URI"], {"notifications.events": "#"})
    yield office
    office.tap.close()


def tomorrow_at(hour: int, minute: int = 0) -> datetime:
    """A moment near now (tokens stay valid) at a chosen time of day, in UTC."""
    day = datetime.now(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def ready(patron: str, reservation_id: str = "r1", deadline: datetime | None = None) -> dict:
    return {"reservation_id": reservation_id, "patron": patron, "pickup_point": POINT, "lines": LINES,
            "pickup_deadline": deadline or datetime(2026, 12, 4, 16, 0, tzinfo=UTC)}


def deliveries(url: str, **where) -> list:
    engine = create_engine(url)
    with engine.connect() as conn:
        query = select(Delivery)
        for key, value in where.items():
            query = query.where(getattr(Delivery, key) == value)
        rows = conn.execute(query).all()
    engine.dispose()
    return rows


def test_ready_reservation_gives_exactly_one_french_email_even_delivered_twice(post_office):
    api = post_office.start()
    assert api.call("PUT", "/patrons/C1/contact", json={"email": "Lea.Morel@Example.org"}).status_code == 200
    event = publish(post_office.amqp, "reservations", "reservation_ready", ready("C1"))
    publish(post_office.amqp, "reservations", "reservation_ready", {}, event=event)  # the same event again
    post_office.tap.wait("notification_sent")
    wait_for(lambda: len(post_office.mailbox.messages) == 1)
    mail = post_office.mailbox.messages[0]
    assert mail["To"] == "Lea.Morel@example.org"
    assert mail["Subject"] == "Vos documents vous attendent à Médiathèque de quartier"
    text = mail.get_content()
    assert "La nuit du nord" in text and "Le phare de minuit" in text
    assert "jusqu'au vendredi 4 décembre à 17 h 00" in text  # 16:00 UTC is 17:00 in Paris
    with pytest.raises(AssertionError):
        wait_for(lambda: len(post_office.mailbox.messages) > 1, timeout=1)
    sent = post_office.tap.of_type("notification_sent")
    assert len(sent) == 1 and sent[0]["data"]["event_id"] == event.id
    assert "Lea" not in str(sent[0])  # no personal data in events


def test_a_recorded_message_goes_at_once_not_at_the_next_tick(post_office):
    # The send round is woken when a recording commits (TimerWake): with a tick every minute, it still goes in seconds.
    api = post_office.start(NOTIFY_SEND_SECONDS=60)
    assert api.call("PUT", "/patrons/C1/contact", json={"email": "lea@example.org"}).status_code == 200
    publish(post_office.amqp, "reservations", "reservation_ready", ready("C1"))
    wait_for(lambda: len(post_office.mailbox.messages) == 1, timeout=10, what="the message sent before the tick")
    publish(post_office.amqp, "reservations", "reservation_ready", ready("C1", "r2"))
    wait_for(lambda: len(post_office.mailbox.messages) == 2, timeout=10, what="woken again")


def test_english_sms_within_two_segments_and_transient_gateway_failures_retried(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C2/contact", json={"phone": "06 12 34 56 78", "preferred_channel": "sms",
                                                 "sms_consent": True, "language": "en"})
    post_office.gateway.answers = [503, 503]
    many = [{"line_id": f"l{n}", "title_id": f"t{n}", "title": f"Un très long titre de roman numéro {n}"}
            for n in range(12)]
    with time_machine.travel(tomorrow_at(10), tick=True):
        publish(post_office.amqp, "reservations", "reservation_ready", {**ready("C2"), "lines": many})
        post_office.tap.wait("notification_sent")
    sms = post_office.gateway.received[0]
    assert sms["to"] == "+33612345678" and sms["authorization"] == "Bearer gw-secret"
    assert sms["text"].startswith("Library: your reservation waits at Médiathèque de quartier")
    from services.notifications.domain import sms_segments
    assert sms_segments(sms["text"]) <= 2 and "+" in sms["text"]
    assert deliveries(post_office.url, patron="C2")[0].attempts == 3


def test_permanent_and_exhausted_failures_publish_notification_failed_and_can_be_resent(post_office):
    api = post_office.start(NOTIFY_MAX_ATTEMPTS=2)
    for card in ("C3", "C4"):
        put = api.call("PUT", f"/patrons/{card}/contact", json={"phone": "07 81 23 45 67", "preferred_channel": "sms",
                                                                "sms_consent": True})
        assert put.status_code == 200 and put.json()["phone"] == "+33781234567"
    with time_machine.travel(tomorrow_at(10), tick=True):
        post_office.gateway.answers = [400]
        publish(post_office.amqp, "reservations", "reservation_ready", ready("C3", "r3"))
        failed = post_office.tap.wait("notification_failed", reservation_id="r3")[0]
        assert failed["data"]["reason"] == "permanent"
        post_office.gateway.answers = [500, 500]
        publish(post_office.amqp, "reservations", "reservation_ready", ready("C4", "r4"))
        assert post_office.tap.wait("notification_failed", reservation_id="r4")[0]["data"]["reason"] == "exhausted"
        log = api.get("/deliveries", params={"status": "failed"}).json()
        assert {d["patron"] for d in log} == {"C3", "C4"} and all(d["last_error"] for d in log)
        again = api.post(f"/deliveries/{log[0]['id']}/resend")
        assert again.status_code == 200 and again.json()["status"] == "pending"
        post_office.tap.wait("notification_sent")
        assert api.post(f"/deliveries/{log[0]['id']}/resend").status_code == 409
    assert api.get("/deliveries", params={"status": "lost"}).status_code == 400


def test_quiet_hours_hold_sms_and_a_message_that_no_longer_holds_is_dropped(post_office):
    api = post_office.start()
    for card in ("C5", "C6"):
        api.call("PUT", f"/patrons/{card}/contact", json={"phone": "0612345678", "preferred_channel": "sms",
                                                          "sms_consent": True})
    evening = tomorrow_at(21, 30)  # 22:30 in Paris in winter, 23:30 in summer
    with time_machine.travel(evening, tick=True) as clock:
        publish(post_office.amqp, "reservations", "reservation_ready", ready("C5", "r5"))
        publish(post_office.amqp, "reservations", "reservation_ready", ready("C6", "r6"))
        wait_for(lambda: len(deliveries(post_office.url)) == 2)
        held = deliveries(post_office.url, patron="C5")[0]
        paris_eight = datetime.combine(evening.date() + timedelta(days=1), time(8), tzinfo=ZoneInfo("Europe/Paris"))
        assert held.next_attempt_at == paris_eight and held.held_for_quiet_hours
        publish(post_office.amqp, "reservations", "reservation_collected",
                {"reservation_id": "r6", "patron": "C6", "pickup_point": POINT, "loans": []})
        clock.move_to(paris_eight - timedelta(minutes=20))  # still quiet
        with pytest.raises(AssertionError):
            wait_for(lambda: post_office.gateway.received, timeout=0.8)
        clock.move_to(paris_eight + timedelta(minutes=1))
        post_office.tap.wait("notification_sent")
        wait_for(lambda: deliveries(post_office.url, patron="C6")[0].status == "obsolete")
    assert [m["to"] for m in post_office.gateway.received] == ["+33612345678"]
    assert len(post_office.tap.of_type("notification_sent")) == 1


def test_a_crash_between_recording_and_sending_loses_nothing_and_sends_once(post_office):
    api = post_office.start(NOTIFY_SEND_SECONDS=3600, NOTIFY_SEND_ON_RECORD=False)  # records, never gets to send
    api.call("PUT", "/patrons/C7/contact", json={"email": "c7@example.org"})
    publish(post_office.amqp, "reservations", "reservation_ready", ready("C7", "r7"))
    wait_for(lambda: deliveries(post_office.url, patron="C7"))
    assert post_office.mailbox.messages == []
    post_office.containers[0].kill()  # dies without sending; a new one picks the recorded delivery up
    post_office.start()
    wait_for(lambda: len(post_office.mailbox.messages) >= 1)
    with pytest.raises(AssertionError):
        wait_for(lambda: len(post_office.mailbox.messages) > 1, timeout=1)


def test_contact_api_validates_and_guards(post_office, token):
    api = post_office.start()
    bad = [({"email": "not-an-address"}, "email"), ({"phone": "01 23 45 67 89"}, "phone"),
           ({"phone": "07 12 34 56 78"}, "phone"), ({"phone": "+44 7700 900123"}, "phone"), ({}, "email"),
           ({"email": "a@b.fr", "preferred_channel": "sms"}, "phone"),
           ({"email": "a@b.fr", "language": "de"}, "language")]
    for body, field in bad:
        answer = api.call("PUT", "/patrons/C8/contact", json=body)
        assert answer.status_code == 400 and field in answer.json()["fields"], (body, answer.text)
    other = token("patron", "C9")
    assert api.call("PUT", "/patrons/C8/contact", json={"email": "x@example.org"}, headers=other).status_code == 403
    assert api.get("/patrons/C8/contact", headers=other).status_code == 403
    assert api.get("/deliveries", headers=other).status_code == 403
    engine = create_engine(post_office.url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContactRecord)).scalar() == 0
    own = token("patron", "C8")
    assert api.call("PUT", "/patrons/C8/contact", json={"email": "c8@example.org"}, headers=own).status_code == 200
    assert api.get("/patrons/C8/contact", headers=own).json()["email"] == "c8@example.org"
    engine.dispose()


def test_erasure_deletes_the_contact_and_blanks_the_log(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C10/contact", json={"email": "c10@example.org"})
    publish(post_office.amqp, "reservations", "reservation_ready", ready("C10", "r10"))
    post_office.tap.wait("notification_sent")
    erased = api.call("DELETE", "/patrons/C10/contact")
    assert erased.status_code == 200 and erased.json()["deliveries_blanked"] == 1
    assert api.get("/patrons/C10/contact").status_code == 404
    row = deliveries(post_office.url, patron="C10")[0]
    assert (row.recipient, row.subject, row.body, row.status) == (None, None, None, "sent")


def test_no_contact_is_visible_as_a_failure(post_office):
    post_office.start()
    publish(post_office.amqp, "reservations", "reservation_ready", ready("C11", "r11"))
    assert post_office.tap.wait("notification_failed")[0]["data"]["reason"] == "no_contact"


def policy(url: str) -> dict | None:
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(select(PolicyState.value).where(PolicyState.name == "continuity")).first()
    engine.dispose()
    return row[0] if row else None


def test_overdue_reminders_are_suppressed_while_the_library_suspends_them(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C12/contact", json={"email": "c12@example.org"})
    overdue = {"loan_id": "loan12", "reservation_id": "r12", "patron": "C12", "barcode": "B12", "title_id": "t",
               "title": "La nuit du nord", "due_at": datetime.now(UTC) - timedelta(days=3), "days_overdue": 3,
               "reminder_step": 1}
    now = datetime.now(UTC)
    publish(post_office.amqp, "reservations", "continuity_policy_changed", {
        "suspended": True, "suspension_id": "s1", "starts_at": now - timedelta(days=1),
        "ends_at": now + timedelta(days=30), "reason": "confinement", "grace_days": 14, "changed_by": "staff-1"})
    wait_for(lambda: policy(post_office.url) and policy(post_office.url)["suspended"])  # learned first
    publish(post_office.amqp, "reservations", "loan_overdue", overdue)
    wait_for(lambda: [d.status for d in deliveries(post_office.url, patron="C12")] == ["suppressed"])
    publish(post_office.amqp, "reservations", "continuity_policy_changed", {
        "suspended": False, "grace_days": 14, "changed_by": "staff-1"})
    wait_for(lambda: policy(post_office.url)["suspended"] is False)
    publish(post_office.amqp, "reservations", "loan_overdue", {**overdue, "reminder_step": 2})
    post_office.tap.wait("notification_sent")
    assert len(post_office.mailbox.messages) == 1
    assert "« La nuit du nord »" in post_office.mailbox.messages[0].get_content()


def test_shifted_due_dates_make_one_message_per_patron(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C13/contact", json={"email": "c13@example.org"})
    due = datetime(2026, 5, 12, 16, tzinfo=UTC)
    publish(post_office.amqp, "reservations", "due_dates_shifted", {
        "shift_id": "sh1", "patron": "C13", "undone": False, "reservations": [],
        "loans": [{"loan_id": f"l{n}", "title": title, "previous_due_at": due - timedelta(days=30), "due_at": due}
                  for n, title in enumerate(["La nuit du nord", "Le phare de minuit", "L'île des marées"])]})
    post_office.tap.wait("notification_sent")
    wait_for(lambda: post_office.mailbox.messages)
    mail = post_office.mailbox.messages[0]
    assert mail["Subject"] == "Nouvelles dates de retour"
    text = mail.get_content()
    assert "à rendre à partir du 12 mai" in text and "L'île des marées" in text
    with pytest.raises(AssertionError):
        wait_for(lambda: len(post_office.mailbox.messages) > 1, timeout=1)


def test_patrons_waiting_for_a_stop_are_told_when_it_opens(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C14/contact", json={"email": "c14@example.org"})
    stop = {"id": "lux", "name": "Lux — place de la Mairie", "kind": "bibliobus_stop", "site": "central"}
    publish(post_office.amqp, "reservations", "reservation_released_to_allocation",
            {"reservation_id": "r14", "patron": "C14", "pickup_point": stop, "lines": LINES})
    post_office.tap.wait("notification_sent")
    mail = post_office.mailbox.messages[0]
    assert mail["Subject"] == "Le bibliobus s'arrête pour vous à Lux — place de la Mairie"
    assert "ouvre au drive" in mail.get_content() and "La nuit du nord" in mail.get_content()


def slot(patron: str, reservation_id: str, **extra) -> dict:
    return {"appointment_id": f"a-{reservation_id}", "reservation_id": reservation_id, "patron": patron,
            "pickup_point": POINT, "starts_at": datetime(2026, 12, 1, 9, 15, tzinfo=UTC),
            "ends_at": datetime(2026, 12, 1, 9, 30, tzinfo=UTC), **extra}


def inbox_size(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(Inbox)).scalar()
    engine.dispose()
    return count


def test_a_booked_slot_is_confirmed_in_paris_time_and_a_moved_one_says_so(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C15/contact", json={"email": "c15@example.org"})
    api.call("PUT", "/patrons/C16/contact", json={"phone": "0612345679", "preferred_channel": "sms",
                                                  "sms_consent": True})
    with time_machine.travel(tomorrow_at(10), tick=True):
        publish(post_office.amqp, "reservations", "pickup_slot_booked",
                slot("C15", "r15", booked_by="patron", moved_from=None))
        publish(post_office.amqp, "reservations", "pickup_slot_booked",
                slot("C16", "r16", booked_by="staff", moved_from=datetime(2026, 11, 30, 16, tzinfo=UTC)))
        post_office.tap.wait("notification_sent", count=2)
    mail = post_office.mailbox.messages[0]
    assert mail["Subject"] == "Rendez-vous confirmé le mardi 1 décembre à 10 h 15"  # 09:15 UTC is 10:15 in Paris
    assert "à Médiathèque de quartier le mardi 1 décembre à 10 h 15 (créneau jusqu'à 10 h 30)" in mail.get_content()
    assert [m["text"] for m in post_office.gateway.received] == [
        "Médiathèque : rendez-vous déplacé à Médiathèque de quartier le mardi 1 décembre à 10 h 15 "
        "(au lieu du lundi 30 novembre à 17 h 00)."]
    assert [d.event_type for d in deliveries(post_office.url, patron="C16")] == ["pickup_slot_booked"]


def test_only_slots_the_library_gave_back_are_announced(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C17/contact", json={"email": "c17@example.org"})
    for reason, by in (("moved", "patron"), ("reservation_closed", "system"), ("cancelled", "patron")):
        publish(post_office.amqp, "reservations", "pickup_slot_cancelled",
                slot("C17", "r17", reason=reason, cancelled_by=by))
    wait_for(lambda: inbox_size(post_office.url) == 3)  # all three handled, none recorded a delivery
    assert deliveries(post_office.url, patron="C17") == []
    publish(post_office.amqp, "reservations", "pickup_slot_cancelled",
            slot("C17", "r17", reason="drive_closed", cancelled_by="staff"))
    post_office.tap.wait("notification_sent")
    mail = post_office.mailbox.messages[0]
    assert mail["Subject"] == "Rendez-vous annulé : drive fermé ce jour-là"
    assert "merci de réserver un autre créneau" in mail.get_content()
    publish(post_office.amqp, "reservations", "pickup_slot_cancelled",
            slot("C17", "r17", reason="cancelled", cancelled_by="staff"))
    post_office.tap.wait("notification_sent", count=2)
    assert post_office.mailbox.messages[1]["Subject"] == "Rendez-vous annulé par la médiathèque"
    with pytest.raises(AssertionError):
        wait_for(lambda: len(post_office.mailbox.messages) > 2, timeout=1)


def test_the_ready_message_links_to_the_patron_page_with_a_token_for_its_reservation(post_office):
    api = post_office.start(PATRON_APP_URL="https://app.example.org/")
    api.call("PUT", "/patrons/C18/contact", json={"email": "c18@example.org", "language": "en"})
    api.call("PUT", "/patrons/C19/contact", json={"phone": "0612345670", "preferred_channel": "sms",
                                                  "sms_consent": True})
    deadline = datetime.now(UTC) + timedelta(days=10)
    with time_machine.travel(tomorrow_at(10), tick=True):
        publish(post_office.amqp, "reservations", "reservation_ready", ready("C18", "r18", deadline))
        publish(post_office.amqp, "reservations", "reservation_ready", ready("C19", "r19", deadline))
        post_office.tap.wait("notification_sent", count=2)
    mail = re.search(r"tell us you have arrived: https://app\.example\.org/r#([A-Za-z0-9_.-]+)",
                     post_office.mailbox.messages[0].get_content())
    assert mail and read_reservation_link(None, mail.group(1)).reservation_id == "r18"
    sms = post_office.gateway.received[0]["text"]
    texted = re.fullmatch(r".*Sur place \? Signalez-vous : https://app\.example\.org/r#(\S+)", sms)
    assert texted and read_reservation_link(None, texted.group(1)).reservation_id == "r19"
    assert "La nuit du nord" in sms


def test_selections_are_acknowledged_and_their_outcome_told_but_arrivals_are_not(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C20/contact", json={"email": "c20@example.org"})
    asked = {"selection_id": "s20", "patron": "C20", "pickup_point": POINT, "documents": 4,
             "requested_at": datetime(2026, 11, 30, 10, tzinfo=UTC)}
    publish(post_office.amqp, "reservations", "selection_requested",
            {**asked, "channel": "phone", "audience": "youth", "age_min": 8, "age_max": 10, "kinds": ["comic"]})
    post_office.tap.wait("notification_sent")
    assert "votre demande de sélection de 4 documents" in post_office.mailbox.messages[0].get_content()
    prepared_at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    publish(post_office.amqp, "reservations", "selection_prepared",
            {**asked, "outcome": "prepared", "reservation_id": "r20", "prepared_at": prepared_at})
    post_office.tap.wait("notification_sent", count=2)
    assert "Votre sélection de 4 documents a été choisie" in post_office.mailbox.messages[1].get_content()
    publish(post_office.amqp, "reservations", "selection_prepared",
            {**asked, "selection_id": "s21", "outcome": "nothing_available", "documents": 0,
             "prepared_at": prepared_at})
    post_office.tap.wait("notification_sent", count=3)
    assert "appelez la médiathèque" in post_office.mailbox.messages[2].get_content()
    queues = declare_topology([NotificationsService], {"AMQP_URI": post_office.amqp})
    assert any("pickup_slot_booked" in q for q in queues) and not any("patron_arrived" in q for q in queues)
    publish(post_office.amqp, "reservations", "patron_arrived",
            {"reservation_id": "r20", "patron": "C20", "pickup_point": POINT, "arrived_at": prepared_at,
             "ready": True, "signalled_by": "patron"})
    with pytest.raises(AssertionError):
        wait_for(lambda: len(post_office.mailbox.messages) > 3, timeout=1)
    assert len(deliveries(post_office.url, patron="C20")) == 3


# --- the sender: one bad message never touches another, a resend reaches the patron as they are now -------------

def change_deliveries(url: str, values: dict, **where) -> None:
    """What a process that died mid-round leaves behind, written as it would be."""
    engine = create_engine(url)
    with engine.begin() as conn:
        query = update(Delivery).values(**values)
        for key, value in where.items():
            query = query.where(getattr(Delivery, key) == value)
        conn.execute(query)
    engine.dispose()


def status_of(url: str, patron: str) -> list[str]:
    return [d.status for d in deliveries(url, patron=patron)]


def recorded_unsent(post_office, events: list[dict]) -> Client:
    """Each event's patron reachable by e-mail, its delivery recorded by a process that never sends."""
    api = post_office.start(NOTIFY_SEND_SECONDS=3600, NOTIFY_SEND_ON_RECORD=False)
    for data in events:
        api.call("PUT", f"/patrons/{data['patron']}/contact", json={"email": f"{data['patron'].lower()}@example.org"})
        publish(post_office.amqp, "reservations", "reservation_ready", data)
    wait_for(lambda: len(deliveries(post_office.url)) == len(events))
    return api


def sent_in_one_round(post_office, **config) -> None:
    """What was recorded is claimed by a new process in one round."""
    post_office.containers[-1].kill()
    post_office.start(**config)


@pytest.mark.parametrize("db_kind", BOTH)
def test_an_attempt_that_crashes_is_retried_then_failed_and_never_touches_another_message(post_office):
    # A carriage return in a pickup point's name makes the e-mail library raise (not a channel failure).
    odd = {**POINT, "name": "Médiathèque\rcentrale"}
    recorded_unsent(post_office, [{**ready("C30", "r30"), "pickup_point": odd}, ready("C31", "r31")])
    sent_in_one_round(post_office, NOTIFY_MAX_ATTEMPTS=3)
    wait_for(lambda: status_of(post_office.url, "C31") == ["sent"], what="the other patron's message settled")
    failed = post_office.tap.wait("notification_failed", reservation_id="r30")[0]["data"]
    assert (failed["reason"], failed["attempts"]) == ("exhausted", 3)
    crashed = deliveries(post_office.url, patron="C30")[0]
    assert crashed.status == "failed" and "ValueError" in crashed.last_error
    with pytest.raises(AssertionError):
        wait_for(lambda: len(post_office.mailbox.messages) > 1, timeout=1)
    assert [m["To"] for m in post_office.mailbox.messages] == ["c31@example.org"]
    assert len(post_office.tap.of_type("notification_sent")) == 1


@pytest.mark.parametrize("db_kind", BOTH)
def test_a_message_blanked_by_erasure_while_it_waited_fails_alone(post_office):
    api = recorded_unsent(post_office, [ready("C32", "r32"), ready("C33", "r33")])
    assert api.call("DELETE", "/patrons/C32/contact").json()["deliveries_blanked"] == 1
    sent_in_one_round(post_office)
    wait_for(lambda: status_of(post_office.url, "C33") == ["sent"], what="the other patron's message settled")
    assert post_office.tap.wait("notification_failed", reservation_id="r32")[0]["data"]["reason"] == "erased"
    assert status_of(post_office.url, "C32") == ["failed"]
    assert [m["To"] for m in post_office.mailbox.messages] == ["c33@example.org"]


@pytest.mark.parametrize("db_kind", BOTH)
def test_a_delivery_whose_lease_ran_out_at_the_last_attempt_is_failed_not_claimed_again(post_office):
    recorded_unsent(post_office, [ready("C34", "r34")])
    post_office.containers[-1].kill()
    # The last allowed attempt was claimed by a process that died before settling it: its lease ran out.
    change_deliveries(post_office.url, {"status": "sending", "attempts": 3,
                                        "next_attempt_at": datetime.now(UTC) - timedelta(seconds=1)}, patron="C34")
    post_office.start(NOTIFY_MAX_ATTEMPTS=3)
    failed = post_office.tap.wait("notification_failed", reservation_id="r34")[0]["data"]
    assert (failed["reason"], failed["attempts"]) == ("exhausted", 3)
    row = deliveries(post_office.url, patron="C34")[0]
    assert (row.status, row.attempts) == ("failed", 3) and "never settled" in row.last_error
    assert post_office.mailbox.messages == []


def test_resending_the_message_of_a_patron_who_erased_their_contact_is_refused(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C35/contact", json={"email": "c35@example.org"})
    post_office.mailbox.answers = [550]
    publish(post_office.amqp, "reservations", "reservation_ready", ready("C35", "r35"))
    post_office.tap.wait("notification_failed", reservation_id="r35")
    failed = deliveries(post_office.url, patron="C35")[0]
    api.call("DELETE", "/patrons/C35/contact")
    answer = api.post(f"/deliveries/{failed.id}/resend")
    assert answer.status_code == 409, answer.text
    assert "erased" in answer.json()["message"]
    assert status_of(post_office.url, "C35") == ["failed"]


def test_a_resend_goes_to_the_address_the_patron_gave_since(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C36/contact", json={"email": "old.c36@example.org"})
    post_office.mailbox.answers = [550]
    publish(post_office.amqp, "reservations", "reservation_ready", ready("C36", "r36"))
    post_office.tap.wait("notification_failed", reservation_id="r36")
    api.call("PUT", "/patrons/C36/contact", json={"email": "new.c36@example.org"})
    failed = deliveries(post_office.url, patron="C36")[0]
    again = api.post(f"/deliveries/{failed.id}/resend")
    assert again.status_code == 200 and again.json()["recipient"] == "new.c36@example.org"
    post_office.tap.wait("notification_sent")
    assert [m["To"] for m in post_office.mailbox.messages] == ["new.c36@example.org"]


def test_sms_without_consent_is_refused_when_the_contact_is_given(post_office):
    api = post_office.start()
    for body in ({"phone": "0612345678", "preferred_channel": "sms"},
                 {"phone": "0612345678", "email": "c37@example.org", "preferred_channel": "sms",
                  "sms_consent": False}):
        answer = api.call("PUT", "/patrons/C37/contact", json=body)
        assert answer.status_code == 400, answer.text
        assert "sms_consent" in answer.json()["fields"]
    assert api.get("/patrons/C37/contact").status_code == 404
    ok = api.call("PUT", "/patrons/C37/contact", json={"phone": "0612345678", "preferred_channel": "sms",
                                                       "sms_consent": True})
    assert ok.status_code == 200


@pytest.mark.parametrize("db_kind", BOTH)
def test_a_message_waiting_for_a_retry_is_not_overtaken_by_a_later_one_for_the_same_patron(post_office):
    api = post_office.start(NOTIFY_RETRY_BASE_SECONDS=1.5)
    api.call("PUT", "/patrons/C38/contact", json={"email": "c38@example.org"})
    api.call("PUT", "/patrons/C39/contact", json={"email": "c39@example.org"})
    post_office.mailbox.answers = [451]
    publish(post_office.amqp, "reservations", "reservation_ready", ready("C38", "r38a"))
    wait_for(lambda: [(d.status, d.attempts) for d in deliveries(post_office.url, patron="C38")] == [("pending", 1)])
    other = {**POINT, "name": "Bibliothèque de la gare"}
    publish(post_office.amqp, "reservations", "reservation_ready", {**ready("C38", "r38b"), "pickup_point": other})
    publish(post_office.amqp, "reservations", "reservation_ready", ready("C39", "r39"))  # another patron: no wait
    post_office.tap.wait("notification_sent", reservation_id="r39")
    post_office.tap.wait("notification_sent", count=3)
    assert [m["Subject"] for m in post_office.mailbox.messages if m["To"] == "c38@example.org"] == [
        "Vos documents vous attendent à Médiathèque de quartier",
        "Vos documents vous attendent à Bibliothèque de la gare"]
    assert post_office.mailbox.messages[0]["To"] == "c39@example.org"


def shift(patron: str, undone: bool, due: datetime, previous: datetime, shift_id: str = "sh40") -> dict:
    return {"shift_id": shift_id, "patron": patron, "undone": undone, "reservations": [],
            "loans": [{"loan_id": "loan40", "title": "La nuit du nord", "previous_due_at": previous, "due_at": due}]}


@pytest.mark.parametrize("db_kind", BOTH)
def test_a_shift_undone_while_its_sms_waited_for_the_morning_is_never_sent(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C40/contact", json={"phone": "0612345671", "preferred_channel": "sms",
                                                  "sms_consent": True})
    api.call("PUT", "/patrons/C41/contact", json={"phone": "0612345672", "preferred_channel": "sms",
                                                  "sms_consent": True})
    usual, later = datetime(2026, 5, 12, 16, tzinfo=UTC), datetime(2026, 6, 12, 16, tzinfo=UTC)
    evening = tomorrow_at(21, 30)
    with time_machine.travel(evening, tick=True) as clock:
        publish(post_office.amqp, "reservations", "due_dates_shifted", shift("C40", False, later, usual))
        wait_for(lambda: deliveries(post_office.url, patron="C40"))
        publish(post_office.amqp, "reservations", "due_dates_shifted", shift("C40", True, usual, later))
        # Another patron's shift, not undone, goes in the morning as usual.
        publish(post_office.amqp, "reservations", "due_dates_shifted", shift("C41", False, later, usual, "sh41"))
        wait_for(lambda: len(deliveries(post_office.url)) == 3)
        clock.move_to(datetime.combine(evening.date() + timedelta(days=1), time(8, 1),
                                       tzinfo=ZoneInfo("Europe/Paris")))
        post_office.tap.wait("notification_sent")
        wait_for(lambda: status_of(post_office.url, "C40") == ["obsolete", "obsolete"],
                 what="the shift and its undoing both obsolete")
    assert [m["to"] for m in post_office.gateway.received] == ["+33612345672"]


def test_a_shift_of_only_a_ready_reservation_tells_its_new_pickup_deadline(post_office):
    api = post_office.start()
    api.call("PUT", "/patrons/C42/contact", json={"email": "c42@example.org"})
    api.call("PUT", "/patrons/C43/contact", json={"phone": "0612345673", "preferred_channel": "sms",
                                                  "sms_consent": True})
    deadline = datetime(2026, 5, 12, 16, tzinfo=UTC)
    with time_machine.travel(tomorrow_at(10), tick=True):
        for card in ("C42", "C43"):
            publish(post_office.amqp, "reservations", "due_dates_shifted", {
                "shift_id": f"sh-{card}", "patron": card, "undone": False, "loans": [],
                "reservations": [{"reservation_id": f"r-{card}", "pickup_deadline": deadline,
                                  "previous_pickup_deadline": deadline - timedelta(days=20)}]})
        post_office.tap.wait("notification_sent", count=2)
    mail = post_office.mailbox.messages[0]
    text = mail.get_content()
    assert mail["Subject"] == "Votre réservation vous attend plus longtemps"
    assert "jusqu'au mardi 12 mai à 18 h 00" in text, text  # 16:00 UTC is 18:00 in Paris in May
    assert "rendre" not in text
    sms = post_office.gateway.received[0]["text"]
    assert "12 mai" in sms and "rendre" not in sms, sms


@pytest.mark.parametrize("db_kind", BOTH)
def test_settling_one_outcome_that_raises_leaves_the_others_settled(db_kind, make_database, tmp_path):
    from services.common.database import make_engine
    from services.common.relay import Events
    from services.notifications import postroom
    from services.notifications.models import Outbox

    url = f"sqlite:///{tmp_path / 'settle.db'}" if db_kind == "sqlite" else make_database("notifications")
    if db_kind == "sqlite":
        upgrade("notifications", url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        # d3's channel is one no event may name: settling its failure raises after its row was changed.
        for id_, channel in (("d1", "email"), ("d2", "email"), ("d3", "fax")):
            session.add(Delivery(id=id_, event_id=f"e-{id_}", event_type="reservation_ready", announced_at=now,
                                 patron="C50", channel=channel, status="sending", recipient="c50@example.org",
                                 subject="s", body="b", attempts=1, next_attempt_at=now, created_at=now))
    events = Events("notifications", Outbox, kick=lambda: None)
    with Session(engine) as session, session.begin():
        postroom.settle_all(session, events, [
            postroom.Attempt("d1"), postroom.Attempt("d3", error="refused", permanent=True),
            postroom.Attempt("gone", error="SMTP 451"), postroom.Attempt("d2", error="SMTP 451")], now)
    with Session(engine) as session:
        # d3 is left as it was (its lease brings it back), not failed without its notification_failed
        assert {d.id: d.status for d in session.scalars(select(Delivery))} == {
            "d1": "sent", "d2": "pending", "d3": "sending"}
        assert [o.routing_key for o in session.scalars(select(Outbox))] == ["notification_sent"]
    engine.dispose()
