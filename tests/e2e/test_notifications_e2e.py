"""End to end with notifications: a reservation made ready over HTTP gives exactly one French e-mail, received
by a real SMTP server on loopback, even when `reservation_ready` is delivered twice."""

import pytest
from kombu import Connection, Exchange, Producer

from tests.e2e.helpers import import_catalogue
from tests.helpers import smtp_server, wait_for


@pytest.fixture
def mailbox():
    controller, box, port = smtp_server()
    yield box, port
    controller.stop()


def test_ready_reservation_sends_one_email(system, token, mailbox):
    box, port = mailbox
    staff = token("staff")
    reservations, inventory = system.start("reservations"), system.start("inventory")
    notifications = system.start("notifications", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port),
                                 NOTIFY_SEND_SECONDS="0.1")
    for client in (reservations, inventory, notifications):
        client.headers = staff
    assert notifications.call("PUT", "/patrons/C77/contact", json={"email": "c77@example.org"}).status_code == 200
    import_catalogue(system, inventory, "207036822X,L'Étranger,Albert Camus,book,E-7,central,R CAM 1\n", 1)
    title = inventory.get("/titles").json()["titles"][0]["id"]
    rid = reservations.post("/reservations", json={"patron": "C77", "pickup_point": "central-youth",
                                                   "titles": [title]}).json()["id"]
    wait_for(lambda: reservations.get(f"/reservations/{rid}").json()["status"] == "allocated")
    assert reservations.post(f"/reservations/{rid}/ready").status_code == 200
    ready = system.tap.wait("reservation_ready", reservation_id=rid)[0]
    wait_for(lambda: box.messages, timeout=15)
    with Connection(system.amqp_uri) as conn:  # the same event delivered again, as at-least-once allows
        Producer(conn.default_channel).publish(ready, exchange=Exchange("reservations.events", type="topic",
                                                                         durable=True),
                                               routing_key="reservation_ready", serializer="json")
    with pytest.raises(AssertionError):
        wait_for(lambda: len(box.messages) > 1, timeout=2)
    mail = box.messages[0]
    assert mail["To"] == "c77@example.org"
    assert mail["Subject"] == "Vos documents vous attendent à Médiathèque centrale — espace jeunesse"
    assert "L'Étranger" in mail.get_content()
    log = notifications.get("/deliveries", params={"patron": "C77"}).json()
    assert [(d["event_type"], d["status"]) for d in log] == [("reservation_ready", "sent")]
