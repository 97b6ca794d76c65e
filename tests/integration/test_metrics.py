"""`GET /metrics` on the four services, against the real broker and PostgreSQL: the counters move where the
traffic passes (a request, an event handled, a duplicate delivery, a dead letter, a timer tick, a notification),
the dashboard's and the alert rules' queries name only metrics some service exposes, and the health probes
(liveness: the process; readiness: its database and broker)."""

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from kombu import Connection, Exchange, Producer
from nameko.testing.utils import find_free_port
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert
from sqlalchemy.orm import Session

from services.common.database import make_engine
from services.common.envelope import REGISTRY
from services.common.messaging import declare_topology
from services.common.metrics import outbox_state
from services.inventory.models import Outbox as InventoryOutbox
from services.inventory.service import InventoryService
from services.notifications.service import NotificationsService
from tests.helpers import Client, wait_for
from tests.integration.helpers import publish, service_config
from tests.promql import alert_exprs, dashboard_exprs, promql_metric_names

CARD = "40417"  # a patron card: it must never show in a label
POINT = {"id": "neighbourhood", "name": "Médiathèque de quartier", "kind": "library", "site": "neighbourhood"}
LINES = [{"line_id": "l1", "title_id": "t1", "title": "La nuit du nord"}]


class Scrape:
    """One answer of /metrics, parsed with prometheus_client's own parser."""

    def __init__(self, client: Client) -> None:
        answer = client.get("/metrics")
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("text/plain")
        self.families = list(text_string_to_metric_families(answer.text))
        self.samples = [s for f in self.families for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of that name whose labels include `labels` (0 when none)."""
        return sum(s.value for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def labels(self, name: str) -> list[dict]:
        return [s.labels for s in self.samples if s.name == name]


def ready(patron: str, reservation_id: str) -> dict:
    return {"reservation_id": reservation_id, "patron": patron, "pickup_point": POINT, "lines": LINES,
            "pickup_deadline": datetime.now(UTC) + timedelta(days=3)}


def publish_malformed(amqp_uri: str) -> None:
    """A reservation_ready whose data does not fit its schema: dead-lettered at once."""
    message = REGISTRY.build("reservations", "reservation_ready", ready("C-bad", "r-bad")).to_message()
    message["data"] = {"reservation_id": 7}
    with Connection(amqp_uri) as conn:
        Producer(conn.default_channel).publish(
            message, exchange=Exchange("reservations.events", type="topic", durable=True),
            routing_key="reservation_ready", serializer="json")


@pytest.fixture
def four(drive_factory, make_database, rabbit_config, container_factory, token, tmp_path):
    drive = drive_factory(bibliobus_extra={})
    cfg = service_config(rabbit_config, make_database("notifications"), NOTIFY_FILE_SINK_DIR=str(tmp_path),
                         NOTIFY_SEND_SECONDS=0.2)
    declare_topology([NotificationsService], cfg)
    container_factory(NotificationsService, cfg).start()
    notifications = Client(f"http://{cfg['WEB_SERVER_ADDRESS']}", token("staff"))
    clients = {"reservations": drive.reservations, "inventory": drive.inventory, "bibliobus": drive.bibliobus,
               "notifications": notifications}
    return drive, clients, rabbit_config["AMQP_URI"]


def drive_traffic(drive, clients: dict, amqp_uri: str) -> dict[str, Scrape]:
    """Requests, events (one delivered twice, one malformed), a notification sent and one failed, timer ticks."""
    notifications = clients["notifications"]
    assert notifications.call("PUT", f"/patrons/{CARD}/contact", json={"email": "lea@example.org"}).status_code == 200
    assert notifications.get(f"/patrons/{CARD}/contact").status_code == 200
    assert notifications.get("/no/such/route/40417").status_code == 404
    event = publish(amqp_uri, "reservations", "reservation_ready", ready(CARD, "r-1"))
    publish(amqp_uri, "reservations", "reservation_ready", {}, event=event)  # the same event again
    publish(amqp_uri, "reservations", "reservation_ready", ready("C-nobody", "r-2"))  # no contact: failed
    publish_malformed(amqp_uri)
    created = drive.bibliobus.post("/stops", json={
        "id": "metrics-stop", "name": "Place du marché", "district": "Nord", "latitude": 46.8, "longitude": 4.85,
        "capacity_per_visit": 10, "visits": [{"weekday": "tuesday", "arrives": "09:00", "departs": "11:00"}]})
    assert created.status_code == 201, created.text
    assert drive.inventory.post("/titles", json={"title": "Le phare", "author": "Karin Holm",
                                                 "material": "book"}).status_code == 201
    drive.tap.wait("stop_registered")
    drive.tap.wait("title_catalogued")

    def settled() -> dict[str, Scrape] | None:
        scrapes = {name: Scrape(client) for name, client in clients.items()}
        n = scrapes["notifications"]
        done = (n.value("drive_events_handled_total", event_type="reservation_ready", outcome="done") >= 2
                and n.value("drive_events_handled_total", outcome="duplicate") >= 1
                and n.value("drive_events_handled_total", outcome="dead_lettered") >= 1
                and scrapes["bibliobus"].value("drive_events_handled_total", outcome="dead_lettered") >= 1
                and n.value("drive_notifications_total", channel="email", outcome="sent") >= 1
                and scrapes["reservations"].value("drive_events_handled_total", event_type="stop_registered") >= 1
                and scrapes["reservations"].value("drive_events_handled_total", event_type="title_catalogued") >= 1
                and all(s.value("drive_outbox_backlog") == 0 for s in scrapes.values()))
        return scrapes if done else None

    return wait_for(settled, timeout=30, interval=0.3, what="the traffic counted in every service's /metrics")


def test_counters_move_where_the_traffic_passes(four):
    drive, clients, amqp_uri = four
    first = Scrape(clients["notifications"])
    assert first.value("drive_events_handled_total") == 0
    ticked = first.value("drive_timer_last_success_timestamp_seconds", timer="send_due")
    scrapes = drive_traffic(drive, clients, amqp_uri)
    n = scrapes["notifications"]

    # HTTP: by route template, never the raw path; an unknown path under one label.
    assert n.value("drive_http_requests_total", route="/patrons/<card>/contact", method="PUT", status="200") == 1
    assert n.value("drive_http_requests_total", route="/patrons/<card>/contact", method="GET", status="200") == 1
    assert n.value("drive_http_requests_total", route="(unmatched)", status="404") == 1
    assert n.value("drive_http_request_duration_seconds_count", route="/patrons/<card>/contact") == 2
    assert n.value("drive_http_requests_total", route="/metrics", status="200") >= 1
    for scrape in scrapes.values():
        for labels in (s.labels for s in scrape.samples):
            assert not any(CARD in value or "@" in value for value in labels.values()), labels

    # Events: done twice (two patrons), the second delivery of the first a duplicate, the malformed dead-lettered.
    assert n.value("drive_events_handled_total", event_type="reservation_ready", outcome="done") == 2
    assert n.value("drive_events_handled_total", event_type="reservation_ready", outcome="duplicate") == 1
    assert n.value("drive_events_handled_total", event_type="reservation_ready", outcome="dead_lettered") == 1
    assert n.value("drive_events_handled_total", outcome="retried") == 0
    # A duration per handler worker, and notifications takes reservation_ready in batches (a batch counts once): the
    # three deliveries that reached the handler came in one to three batches.
    assert 1 <= n.value("drive_event_handling_duration_seconds_count", event_type="reservation_ready") <= 3
    # One dead letter per queue the malformed event reached (notifications', bibliobus'); one queue, seen by all.
    assert {s.value("drive_dead_letters") for s in scrapes.values()} == {2}

    # Notifications: the e-mail sent, the patron with no address failed; zero for the rest, by channel.
    assert n.value("drive_notifications_total", channel="email", outcome="sent") == 1
    assert n.value("drive_notifications_total", channel="none", outcome="failed") == 1
    assert n.value("drive_notifications_total", channel="sms") == 0
    assert {"drive_notifications_total"}.isdisjoint(scrapes["reservations"].names())

    # The outbox drained; the timers ran (send_due every 0.2 s) and say their interval.
    assert all(s.value("drive_outbox_backlog") == 0 and s.value("drive_outbox_oldest_unsent_age_seconds") == 0
               for s in scrapes.values())
    later = wait_for(lambda: (s := Scrape(clients["notifications"])).value(
        "drive_timer_last_success_timestamp_seconds", timer="send_due") > ticked and s, what="a send_due tick")
    assert later.value("drive_timer_interval_seconds", timer="send_due") == 0.2
    assert scrapes["reservations"].value("drive_timer_interval_seconds", timer="expire_uncollected") == 3600
    assert abs(scrapes["reservations"].value("drive_timer_last_success_timestamp_seconds", timer="expire_uncollected")
               - time.time()) < 120  # not run yet: the container's start

    # The bibliobus gauge, and every source of scrape-time metrics answered.
    assert scrapes["bibliobus"].value("drive_bibliobus_stops_enabled") == 0
    assert "drive_bibliobus_stops_enabled" in scrapes["bibliobus"].names()
    for name, scrape in scrapes.items():
        assert {s.labels["service"] for s in scrape.samples} == {name}  # one registry per container
        assert scrape.value("drive_metrics_source_up", source="database") == 1
        assert scrape.value("drive_metrics_source_up", source="broker") == 1


def test_every_metric_the_dashboard_and_the_alerts_read_is_exposed(four):
    drive, clients, amqp_uri = four
    scrapes = drive_traffic(drive, clients, amqp_uri)
    exposed = set().union(*(s.names() for s in scrapes.values())) | {"up"}  # `up`: Prometheus's own
    wanted = {name: expr for expr in dashboard_exprs() + alert_exprs() for name in promql_metric_names(expr)}
    assert len(dashboard_exprs()) >= 10 and len(alert_exprs()) >= 4
    missing = {name: expr for name, expr in wanted.items() if name not in exposed}
    assert not missing, missing
    # and each drive_* family the services expose is read somewhere (a metric nobody watches is a metric lost)
    families = {f.name for s in scrapes.values() for f in s.families if f.name.startswith("drive_")}
    read = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in wanted}
    assert families - read == set(), families - read


def test_health_probes_answer_on_every_service(four):
    _drive, clients, _amqp = four
    for name, client in clients.items():
        live, ready_ = client.get("/health/live"), client.get("/health/ready")
        assert live.status_code == 200 and live.json() == {"status": "ok", "service": name}
        assert ready_.status_code == 200, ready_.text
        assert ready_.json()["checks"] == {"database": "ok", "broker": "ok"}
        full = client.get("/health").json()
        assert full["status"] == "ok" and full["checks"]["outbox_stuck"] == 0  # the full report keeps its shape


def test_readiness_fails_with_the_database_but_liveness_and_metrics_answer(make_database, rabbit_config,
                                                                           container_factory):
    url = make_database("inventory")
    config = service_config(rabbit_config, url)
    container_factory(InventoryService, config).start()
    client = Client(f"http://{config['WEB_SERVER_ADDRESS']}")
    assert client.get("/health/ready").status_code == 200
    engine = make_engine(url.rsplit("/", 1)[0] + "/postgres", pool_size=1)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    engine.dispose()
    answer = client.get("/health/ready")
    assert answer.status_code == 503, answer.text
    assert answer.json()["status"] == "unavailable"
    assert answer.json()["checks"]["database"].startswith("unreachable") and answer.json()["checks"]["broker"] == "ok"
    assert client.get("/health/live").status_code == 200
    started = time.monotonic()
    scrape = Scrape(client)  # still answers, saying which source did not
    assert time.monotonic() - started < 10
    assert scrape.value("drive_metrics_source_up", source="database") == 0
    assert scrape.value("drive_metrics_source_up", source="broker") == 1
    assert "drive_outbox_backlog" not in scrape.names()


def test_readiness_fails_with_the_broker_but_liveness_answers(make_database, rabbit_config, container_factory):
    config = service_config(rabbit_config, make_database("inventory"))
    container_factory(InventoryService, config).start()
    config["AMQP_URI"] = f"pyamqp://guest:guest@127.0.0.1:{find_free_port()}/"  # what the probes read from now on
    client = Client(f"http://{config['WEB_SERVER_ADDRESS']}")
    answer = client.get("/health/ready")
    assert answer.status_code == 503 and answer.json()["checks"]["broker"].startswith("unreachable")
    assert answer.json()["checks"]["database"] == "ok"
    assert client.get("/health/live").status_code == 200
    scrape = Scrape(client)
    assert scrape.value("drive_metrics_source_up", source="broker") == 0
    assert "drive_dead_letters" not in scrape.names()


def test_outbox_backlog_and_the_age_of_its_oldest_row(make_database):
    engine = make_engine(make_database("inventory"), pool_size=1)
    with Session(engine) as session, session.begin():
        assert outbox_state(session, InventoryOutbox) == (0, 0.0)
        old = datetime.now(UTC) - timedelta(minutes=10)
        session.execute(insert(InventoryOutbox), [
            {"event_id": f"e{i}", "exchange": "inventory.events", "routing_key": "x", "message": {},
             "created_at": old + timedelta(minutes=i), "sent_at": None} for i in range(3)]
            + [{"event_id": "sent", "exchange": "inventory.events", "routing_key": "x", "message": {},
                "created_at": old - timedelta(hours=1), "sent_at": old}])
    with Session(engine) as session, session.begin():
        backlog, age = outbox_state(session, InventoryOutbox)
    engine.dispose()
    assert backlog == 3 and 599 < age < 660
