"""Hostile input at the HTTP edge of all four services: each answers a 4xx JSON error naming the problem,
changes nothing in its database and keeps answering /health (issue 10, point 6)."""

import json
import logging
import socket
import time
from datetime import date, timedelta

import eventlet
import pytest
import requests
from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.orm import Session

from services.bibliobus.service import BibliobusService
from services.common.database import make_engine
from services.common.messaging import declare_topology
from services.common.migrate import upgrade
from services.demo import load_pickup_points
from services.inventory.models import Title
from services.inventory.service import InventoryService
from services.notifications.service import NotificationsService
from services.reservations.service import ReservationsService
from tests.helpers import CSV_HEADER, Client, stop_body
from tests.integration.helpers import service_config

SERVICES = ("reservations", "inventory", "notifications", "bibliobus")


def json_routes() -> dict[str, tuple[str, str, dict]]:
    """Per service, a JSON-body route and a body it accepts, with free text where a service has some."""
    return {
        "reservations": ("POST", "/closed-days", {"pickup_point": "central-adult",
                                                  "day": str(date.today() + timedelta(days=40)),
                                                  "reason": "Fête du quartier"}),
        "inventory": ("POST", "/titles", {"title": "Été brûlant", "author": "Brontë", "material": "book"}),
        "notifications": ("PUT", "/patrons/C1/contact", {"email": "zoé@example.org", "language": "fr"}),
        "bibliobus": ("POST", "/stops", stop_body("saint-remy-eglise")),
    }


@pytest.fixture
def start_four(make_database, rabbit_config, container_factory, token, tmp_path):
    """`start_four("postgresql" | "sqlite")`: the four services, each on its own new database →
    service → (client with a staff token, database url)."""

    def start(backend: str) -> dict[str, tuple[Client, str]]:
        if backend == "postgresql":
            urls = {s: make_database(s) for s in SERVICES}
        else:
            urls = {s: f"sqlite:///{tmp_path / s}.db" for s in SERVICES}
            for service, url in urls.items():
                upgrade(service, url)
        engine = make_engine(urls["reservations"], pool_size=1)
        with Session(engine) as session, session.begin():
            load_pickup_points(session)
        engine.dispose()
        started = {}
        for service, cls in zip(SERVICES, (ReservationsService, InventoryService, NotificationsService,
                                           BibliobusService), strict=True):
            config = service_config(rabbit_config, urls[service], NOTIFY_FILE_SINK_DIR=str(tmp_path))
            declare_topology([cls], config)
            container_factory(cls, config).start()
            started[service] = (Client(f"http://{config['WEB_SERVER_ADDRESS']}", token("staff")), urls[service])
        return started

    return start


@pytest.fixture(params=["postgresql", "sqlite"])
def four(request, start_four):
    return start_four(request.param)


def digest(url: str) -> dict[str, list[str]]:
    """Each table's whole content: equal digests mean nothing changed."""
    engine = create_engine(url)
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        found = {name: sorted(map(repr, conn.execute(select(table)).all()))
                 for name, table in tables.tables.items() if name != "alembic_version"}
    engine.dispose()
    return found


def unchanged(four, cases) -> None:
    """Run `cases()` and check no service's database changed."""
    before = {s: digest(url) for s, (_, url) in four.items()}
    cases()
    assert {s: digest(url) for s, (_, url) in four.items()} == before


def refused(answer: requests.Response, status: int, error: str, *words: str) -> dict:
    assert answer.status_code == status, (answer.request.method, answer.request.url, answer.text[:300])
    assert answer.headers["Content-Type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert body["error"] == error and all(w.lower() in body["message"].lower() for w in words), body
    return body


def test_a_nul_character_in_a_path_a_query_or_a_body_is_refused_naming_the_field(four):
    paths = {"reservations": ("/reservations/r1%00x", "reservation_id"), "inventory": ("/titles/t%00", "title_id"),
             "notifications": ("/patrons/C1%00/contact", "card"), "bibliobus": ("/stops/s%001", "stop_id")}
    queries = {"reservations": ("/closed-days?from=2026-01-01%00&to=2026-01-02", "from"),
               "inventory": ("/titles?q=neige%00", "q"), "notifications": ("/deliveries?patron=C1%00", "patron"),
               "bibliobus": ("/stops/s1/history?limit=1%00", "limit")}
    bodies = {"reservations": ("reason", "reason"), "inventory": ("title", "title"),
              "notifications": ("email", "email"), "bibliobus": ("visits", "visits[0].weekday")}

    def cases():
        for service, (client, _) in four.items():
            path, field = paths[service]
            details = refused(client.get(path), 400, "invalid", "NUL")["details"]
            assert details == {"field": field, "location": "path"}, details
            path, field = queries[service]
            details = refused(client.get(path), 400, "invalid", "NUL")["details"]
            assert details == {"field": field, "location": "query"}, details
            method, path, body = json_routes()[service]
            key, field = bodies[service]
            body = dict(body)
            if key == "visits":
                body["visits"] = [{**body["visits"][0], "weekday": "mon\u0000day"}, *body["visits"][1:]]
            else:
                body[key] = body[key] + "\u0000"
            details = refused(client.call(method, path, json=body), 400, "invalid", "NUL")["details"]
            assert details == {"field": field, "location": "body"}, details
            key_nul = {**json_routes()[service][2], "x\u0000": 1}
            details = refused(client.call(method, path, json=key_nul), 400, "invalid", "NUL")["details"]
            assert details["location"] == "body", details

    unchanged(four, cases)
    client, _ = four["inventory"]
    csv = CSV_HEADER + "9782070360024,Neige\u0000,Orhan Pamuk,book,N-1,central,R PAM\n"
    refused(client.post("/catalogue/import", data=csv.encode(), headers={"Content-Type": "text/csv"}),
            400, "invalid", "NUL")


def test_json_nested_thousands_of_levels_deep_is_refused(four):
    def cases():
        for service, (client, _) in four.items():
            method, path, _ = json_routes()[service]
            for deep in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000, "[" * 40 + "]" * 40):
                answer = client.call(method, path, data=deep, headers={"Content-Type": "application/json"})
                refused(answer, 400, "invalid", "nested")

    unchanged(four, cases)


def test_bodies_that_are_not_utf8_are_refused(four):
    def cases():
        for service, (client, _) in four.items():
            method, path, body = json_routes()[service]
            latin1 = json.dumps(body, ensure_ascii=False).encode("latin-1")
            answer = client.call(method, path, data=latin1, headers={"Content-Type": "application/json"})
            refused(answer, 400, "invalid", "UTF-8")
        client, _ = four["inventory"]
        csv = CSV_HEADER + "9782070360024,Les Misérables,Victor Hugo,book,M-1,central,R HUG\n"
        answer = client.post("/catalogue/import", data=csv.encode("latin-1"), headers={"Content-Type": "text/csv"})
        refused(answer, 400, "invalid", "UTF-8")

    unchanged(four, cases)


def test_a_csv_with_bare_carriage_returns_is_read_line_by_line(four):
    client, url = four["inventory"]
    csv = (CSV_HEADER + "9782070360024,Neige,Orhan Pamuk,book,N-1,central,R PAM\n"
           "9782070412884,L'Étranger,Albert Camus,book,E-1,neighbourhood,R CAM\n").replace("\n", "\r")
    answer = client.post("/catalogue/import", data=csv.encode(), headers={"Content-Type": "text/csv"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["titles_created"] == 2 and answer.json()["copies_created"] == 2, answer.json()
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(Title.title, Title.author).order_by(Title.title)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("L'Étranger", "Albert Camus"), ("Neige", "Orhan Pamuk")]


def test_bodies_in_the_wrong_media_type_answer_415(four):
    def cases():
        for service, (client, _) in four.items():
            method, path, body = json_routes()[service]
            for media_type in ("text/plain", "text/csv", "application/x-www-form-urlencoded", None):
                headers = {"Content-Type": media_type} if media_type else {}
                answer = client.call(method, path, data=json.dumps(body).encode(), headers=headers)
                refused(answer, 415, "unsupported_media_type", "application/json")
        client, _ = four["inventory"]
        csv = CSV_HEADER + "9782070360024,Neige,Orhan Pamuk,book,N-1,central,R PAM\n"
        for media_type in ("application/json", "text/plain"):
            answer = client.post("/catalogue/import", data=csv.encode(), headers={"Content-Type": media_type})
            refused(answer, 415, "unsupported_media_type", "text/csv")

    unchanged(four, cases)


def raw_request(base: str, head: str, body_chunks=(), timeout: float = 5) -> tuple[str, float]:
    """Send a request head (and optionally chunks of body) on a bare socket; return the answer's first part and
    how long it took to come. Stops sending as soon as the server answers."""
    host, port = base.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode())
        sock.setblocking(False)
        answer = b""
        for chunk in body_chunks:
            try:
                answer += sock.recv(65536)
                break
            except BlockingIOError:
                pass
            try:
                sock.sendall(chunk)
            except OSError:
                break
        sock.settimeout(timeout)
        try:
            while b"\r\n\r\n" not in answer:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        except TimeoutError:
            pass
    return answer.decode(errors="replace"), time.monotonic() - started


def test_a_20_mb_body_answers_413_before_it_is_read_and_health_keeps_answering(four, token):
    staff = token("staff")["Authorization"]

    def cases():
        for service, (client, _) in four.items():
            method, path, _ = json_routes()[service]
            head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {staff}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n")
            answer, seconds = raw_request(client.base, head)  # the body is never sent: the server must not wait
            assert answer.startswith("HTTP/1.1 413"), (service, answer[:200])
            assert '"error": "too_large"' in answer and seconds < 2, (service, seconds, answer)
            chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"  # chunked: no length said up front
            head = head.replace("Content-Length: 20000000", "Transfer-Encoding: chunked")
            answer, _ = raw_request(client.base, head, (chunk for _ in range(320)))
            assert answer.startswith("HTTP/1.1 413"), (service, answer[:200])
        client, _ = four["inventory"]
        head = ("POST /catalogue/import HTTP/1.1\r\nHost: x\r\nAuthorization: " + staff +
                "\r\nContent-Type: text/csv\r\nContent-Length: 200000000\r\n\r\n")
        assert raw_request(client.base, head)[0].startswith("HTTP/1.1 413")

    unchanged(four, cases)

    # The case seen: a client that sends a 20 MB e-mail whole, while others ask for /health.
    client, _ = four["notifications"]
    email = "a" * 20_000_000 + "@example.org"
    big = eventlet.spawn(client.call, "PUT", "/patrons/C1/contact", json={"email": email})
    health = []
    for _ in range(10):
        started = time.monotonic()
        assert client.get("/health").status_code == 200
        health.append(time.monotonic() - started)
        eventlet.sleep(0.05)
    refused(big.wait(), 413, "too_large", "bytes")
    assert max(health) < 1, health
    assert client.get("/patrons/C1/contact").status_code == 404


def test_unknown_routes_and_methods_answer_json_everywhere(four):
    def cases():
        for service, (client, _) in four.items():
            refused(client.get("/no/such/route"), 404, "not_found", "/no/such/route")
            answer = refused(client.call("DELETE", "/health"), 405, "method_not_allowed", "DELETE")
            assert "GET" in answer["details"]["allowed"] and "GET" in client.call("DELETE", "/health").headers["Allow"]
            method, path, _ = json_routes()[service]
            answer = client.call("PATCH", path, json={})
            refused(answer, 405, "method_not_allowed", "PATCH")
            assert method in answer.headers["Allow"], answer.headers

    unchanged(four, cases)


def test_a_path_id_longer_than_its_column_is_refused_and_no_sql_parameter_is_logged(start_four, caplog):
    # PostgreSQL only: SQLite bounds no column's length (per-field bounds are the schemas' business).
    client, url = start_four("postgresql")["notifications"]
    caplog.set_level(logging.DEBUG)
    before = digest(url)
    answer = client.call("PUT", f"/patrons/{'C' * 60}/contact",
                         json={"email": "camille.secret@example.org", "phone": "06 12 34 56 78", "language": "fr"})
    # Refused by the path id's own field (services/common/fields.Card), before any statement runs; the engine's
    # hidden parameters are proven on both backends by test_a_failing_statement_logs_no_parameter_values.
    assert "card" in refused(answer, 400, "invalid")["fields"]
    assert digest(url) == before
    logged = caplog.text
    assert "camille.secret" not in logged and "612345678" not in logged, logged[-2000:]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_failing_statement_logs_no_parameter_values(backend, make_database, tmp_path, caplog):
    url = make_database("notifications") if backend == "postgresql" else f"sqlite:///{tmp_path / 'n.db'}"
    if backend == "sqlite":
        upgrade("notifications", url)
    engine = make_engine(url, pool_size=1)
    insert = text("INSERT INTO contacts (card, email, phone, preferred_channel, language, sms_consent, "
                  "updated_at) VALUES (:card, :email, :phone, 'email', 'fr', false, CURRENT_TIMESTAMP)")
    values = {"card": "C1", "email": "camille.secret@example.org", "phone": "+33612345678"}
    with engine.begin() as conn:
        conn.execute(insert, values)
    try:
        with engine.begin() as conn:
            conn.execute(insert, values)  # the same card again: the primary key refuses it
    except Exception:
        logging.getLogger("drive.test").exception("the statement failed")
    engine.dispose()
    assert "the statement failed" in caplog.text and "INSERT INTO contacts" in caplog.text
    assert "camille.secret" not in caplog.text and "612345678" not in caplog.text, caplog.text
