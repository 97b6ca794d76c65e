"""The HTTP edge: who may do what, bad input answered with 4xx and no partial state, the API documents."""

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from kombu import Connection, Exchange, Producer
from openapi_spec_validator import validate
from sqlalchemy import create_engine, func, select, update

from services.common.envelope import REGISTRY
from services.inventory.models import Copy, Title, WaitlistEntry
from services.reservations.models import Loan, Reservation
from tests.helpers import CSV_HEADER, Client, wait_for
from tests.integration.helpers import catalogue, service_config


def count(url: str, model) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(model)).scalar()
    engine.dispose()
    return n


PUBLIC = {"/health", "/health/live", "/health/ready", "/metrics", "/openapi.json"}


def routes(client: Client) -> list[tuple[str, str]]:
    """Every (method, path) the service documents, path parameters filled with "x"."""
    paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), re.sub(r"\{[^}]+\}", "x", path)) for path, ops in paths.items() if path not in PUBLIC
            for method in ops if method in ("get", "post", "put", "delete", "patch")]


def test_every_protected_route_wants_a_valid_token(drive):
    checked = 0
    for service in ("reservations", "inventory"):
        client = Client(getattr(drive, service).base)
        for method, path in routes(client):
            for headers in ({}, {"Authorization": "Bearer forged.token.here"}):
                answer = client.call(method, path, headers=headers)
                assert answer.status_code == 401, (method, path, answer.text)
                assert answer.json()["error"] == "unauthorized"
            checked += 1
    assert checked > 40  # the documented routes, every one of them (the counter's day included)
    for service in ("reservations", "inventory"):
        client = Client(getattr(drive, service).base)
        assert client.get("/health").status_code == 200
        assert client.get("/health").json()["checks"] == {"database": "ok", "broker": "ok", "outbox_stuck": 0}
        validate(client.get("/openapi.json").json())


def test_health_answers_503_when_the_database_does_not(container_factory, rabbit_config):
    from services.inventory.service import InventoryService

    config = service_config(rabbit_config, "postgresql+psycopg2://postgres@127.0.0.1:5432/drive_no_such_database")
    container_factory(InventoryService, config).start()
    answer = Client(f"http://{config['WEB_SERVER_ADDRESS']}").get("/health")
    assert answer.status_code == 503
    assert answer.json()["checks"]["database"].startswith("unreachable") and answer.json()["checks"]["broker"] == "ok"


def test_roles_and_cards(drive, token):
    patron = token("patron", "C1")
    forbidden = [("reservations", "GET", "/patrons/C2/loans"), ("reservations", "GET", "/patrons/C2/account"),
                 ("reservations", "GET", "/patrons/C2/reservations"),
                 ("reservations", "POST", "/reservations/x/ready"), ("reservations", "POST", "/reservations/x/collect"),
                 ("reservations", "GET", "/pickup-points/central-adult/preparation-list"),
                 ("inventory", "POST", "/titles"), ("inventory", "POST", "/checkins"),
                 ("inventory", "GET", "/copies/B1"), ("inventory", "POST", "/catalogue/import")]
    for service, method, path in forbidden:
        answer = getattr(drive, service).call(method, path, headers=patron)
        assert answer.status_code == 403, (method, path, answer.text)
    assert drive.reservations.get("/patrons/C1/loans", headers=patron).status_code == 200
    assert drive.inventory.get("/titles", headers=token("analyst", "a1")).status_code == 200
    title = catalogue(drive, "Le voyage blanc", [("R-1", "central", "R 1")])
    other = drive.reservations.post("/reservations", headers=patron,
                                    json={"patron": "C2", "pickup_point": "central-adult", "titles": [title]})
    assert other.status_code == 403
    assert count(drive.urls["reservations"], Reservation) == 0


def test_bad_reservations_are_refused_and_change_nothing(drive_factory, token):
    drive = drive_factory(reservations_extra={"MAX_DOCUMENTS_PER_CARD": 3, "MAX_BY_MATERIAL": "dvd:1"})
    book = catalogue(drive, "La gare oubliée", [("G-1", "central", "R 1")])
    dvds = [catalogue(drive, f"Film {n}", [(f"D-{n}", "central", "DVD 1")], material="dvd") for n in (1, 2)]
    many = [catalogue(drive, f"Livre {n}", [(f"L-{n}", "central", "R 2")]) for n in range(3)]
    cases = [
        ({"patron": "C1", "pickup_point": "central-adult", "titles": ["nope"]}, "titles"),
        ({"patron": "C1", "pickup_point": "mars", "titles": [book]}, "pickup_point"),
        ({"patron": "C1", "pickup_point": "central-adult", "titles": [book, book]}, "titles"),
        ({"patron": "C1", "pickup_point": "central-adult", "titles": []}, "titles"),
        ({"patron": "C1", "pickup_point": "central-adult", "titles": "abc"}, "titles"),
        ({"patron": "C1", "pickup_point": 12, "titles": [book]}, "pickup_point"),
        ({"pickup_point": "central-adult", "titles": [book]}, "patron"),
        ({"patron": "C1", "pickup_point": "central-adult", "titles": [book, *many]}, "titles"),
        ({"patron": "C1", "pickup_point": "central-adult", "titles": dvds}, "titles"),
    ]
    for body, field in cases:
        answer = drive.reservations.post("/reservations", json=body)
        assert answer.status_code == 400, (body, answer.text)
        error = answer.json()
        assert field in error.get("fields", {}) or error.get("details", {}).get("field") == field, error
    for raw in ("{not json", "", "[1, 2"):
        answer = drive.reservations.post("/reservations", data=raw, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and answer.json()["error"] == "invalid", answer.text
    assert count(drive.urls["reservations"], Reservation) == 0
    assert drive.tap.of_type("reservation_placed") == []


def test_invalid_transitions_answer_409(drive):
    title = catalogue(drive, "Une mer profonde", [("M-1", "central", "R 1")])
    rid = drive.reservations.post("/reservations", json={"patron": "C9", "pickup_point": "central-adult",
                                                         "titles": [title]}).json()["id"]
    assert drive.reservations.post(f"/reservations/{rid}/collect").status_code == 409
    assert drive.reservations.post(f"/reservations/{rid}/cancel").status_code == 200
    for action in ("collect", "ready", "cancel"):
        answer = drive.reservations.post(f"/reservations/{rid}/{action}")
        assert answer.status_code == 409 and "cancelled" in answer.json()["message"]
    assert drive.reservations.get("/reservations/unknown").status_code == 404


def test_catalogue_import_all_or_nothing_then_search(drive, token):
    bad = CSV_HEADER + "207036822X,L'Étranger,Albert Camus,book,X-1,central,R CAM 1\n,Vide,,book,X-2,central,R 1\n"
    answer = drive.inventory.post("/catalogue/import", data=bad.encode(), headers={"Content-Type": "text/csv"})
    assert answer.status_code == 400 and answer.json()["details"]["rows"] == [{"line": 3, "error": "author is empty"}]
    assert count(drive.urls["inventory"], Title) == 0 and count(drive.urls["inventory"], Copy) == 0
    clash = catalogue(drive, "Déjà là", [("X-9", "central", "R 1")])
    dup = CSV_HEADER + "207036822X,L'Étranger,Albert Camus,book,X-1,central,R CAM 1\n,Autre,Y,book,X-9,central,R 1\n"
    answer = drive.inventory.post("/catalogue/import", data=dup.encode(), headers={"Content-Type": "text/csv"})
    assert answer.status_code == 400 and "line 3" in answer.json()["message"]
    assert count(drive.urls["inventory"], Title) == 1 and count(drive.urls["inventory"], Copy) == 1
    good = CSV_HEADER + ("207036822X,L'Étranger,Albert Camus,book,X-1,central,R CAM 1\n"
                     "207036822X,L'Étranger,Albert Camus,book,X-2,neighbourhood,R CAM 1\n")
    answer = drive.inventory.post("/catalogue/import", data=good.encode(), headers={"Content-Type": "text/csv"})
    assert answer.status_code == 201 and answer.json() == {"titles_created": 1, "copies_created": 2}
    assert drive.inventory.post("/catalogue/import", json={"a": 1}).status_code == 415
    found = drive.inventory.get("/titles", params={"q": "camus"}, headers=token("patron", "C1")).json()
    assert found["total"] == 1
    hit = found["titles"][0]
    assert hit["isbn"] == "9782070368228" and hit["availability"]["neighbourhood"] == {"copies": 1, "available": 1}
    assert drive.inventory.get("/titles", params={"q": "978-2-07-036822-8"}).json()["total"] == 1
    assert drive.inventory.get("/titles", params={"limit": 0}).status_code == 400
    assert drive.inventory.get(f"/titles/{clash}").json()["title"] == "Déjà là"


def test_overdue_reminders_once_per_step_and_fines_with_cap(drive_factory, token):
    drive = drive_factory(reservations_extra={"OVERDUE_CHECK_SECONDS": 0.2, "FINE_CENTS_PER_DAY": 30,
                                              "FINE_CAP_CENTS": 200, "REMINDER_STEPS_DAYS": "1,7"})
    title = catalogue(drive, "L'étoile tranquille", [("O-1", "central", "R 1")])
    rid = drive.reservations.post("/reservations", json={"patron": "C7", "pickup_point": "central-adult",
                                                         "titles": [title]}).json()["id"]
    wait_for(lambda: drive.reservations.get(f"/reservations/{rid}").json()["status"] == "allocated")
    drive.reservations.post(f"/reservations/{rid}/ready")
    assert drive.reservations.post(f"/reservations/{rid}/collect").status_code == 200
    engine = create_engine(drive.urls["reservations"])
    with engine.begin() as conn:
        conn.execute(update(Loan).values(due_at=datetime.now(UTC) - timedelta(days=3)))
    first = drive.tap.wait("loan_overdue", reservation_id=rid)
    assert first[0]["data"]["reminder_step"] == 1 and first[0]["data"]["days_overdue"] == 3
    account = drive.reservations.get("/patrons/C7/account", headers=token("patron", "C7")).json()
    assert account["fines_cents"] == 90 and account["overdue_loans"] == 1
    with engine.begin() as conn:
        conn.execute(update(Loan).values(due_at=datetime.now(UTC) - timedelta(days=30)))
    drive.tap.wait("loan_overdue", count=2, reservation_id=rid)
    time.sleep(0.8)  # several more timer ticks: no third reminder for the same step
    steps = [e["data"]["reminder_step"] for e in drive.tap.of_type("loan_overdue", reservation_id=rid)]
    assert steps == [1, 2]
    assert drive.reservations.get("/patrons/C7/account").json()["fines_cents"] == 200  # capped
    # returned (backdated) the day after the due date: one day of fine, no more
    dropped = datetime.now(UTC) - timedelta(days=29)
    checkin = drive.inventory.post("/checkins", json={"barcode": "O-1", "returned_at": dropped.isoformat()})
    assert checkin.status_code == 201
    wait_for(lambda: drive.reservations.get("/patrons/C7/loans").json()[0]["returned_at"])
    assert drive.reservations.get("/patrons/C7/account").json()["fines_cents"] == 30
    engine.dispose()


def test_a_duplicate_delivery_has_one_effect(drive):
    """The same reservation_placed delivered twice sets aside one copy, not two, and queues nobody twice."""
    title = catalogue(drive, "La rivière immense", [("U-1", "central", "R 1"), ("U-2", "central", "R 2")])
    event = REGISTRY.build("reservations", "reservation_placed", {
        "reservation_id": "r-dup", "patron": "C3", "channel": "web", "placed_at": datetime.now(UTC),
        "pickup_point": {"id": "central-adult", "name": "x", "kind": "counter", "site": "central"},
        "lines": [{"line_id": "l-dup", "title_id": title}]})
    with Connection(drive.config["inventory"]["AMQP_URI"]) as conn:
        producer = Producer(conn.default_channel)
        for _ in range(2):
            producer.publish(event.to_message(), exchange=Exchange("reservations.events", type="topic", durable=True),
                             routing_key="reservation_placed", serializer="json")
    drive.tap.wait("items_allocated", reservation_id="r-dup")
    with pytest.raises(AssertionError):
        drive.tap.wait("items_allocated", count=2, reservation_id="r-dup", timeout=1.5)
    engine = create_engine(drive.urls["inventory"])
    with engine.connect() as conn:
        held = conn.execute(select(func.count()).select_from(Copy).where(Copy.reservation_id == "r-dup")).scalar()
        queued = conn.execute(select(func.count()).select_from(WaitlistEntry)).scalar()
    engine.dispose()
    assert (held, queued) == (1, 0)
