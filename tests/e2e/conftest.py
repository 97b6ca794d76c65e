"""The services as real processes (`nameko run`), each on a fresh PostgreSQL database, in a fresh vhost."""

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import requests
from nameko.testing.utils import find_free_port
from sqlalchemy.orm import Session

from services.bibliobus.service import BibliobusService
from services.check import Report, audit_until_clean
from services.cli import SERVICE_CLASSES
from services.common import api_client
from services.common.database import make_engine
from services.common.deadletters import count_dead_letters
from services.common.messaging import declare_topology
from services.demo import load_pickup_points
from services.inventory.service import InventoryService
from services.notifications.service import NotificationsService
from services.reservations.service import ReservationsService
from tests.helpers import Client, EventTap, wait_for

ROOT = Path(__file__).resolve().parents[2]


class Processes:
    def __init__(self, amqp_uri: str, urls: dict, log_dir: Path) -> None:
        self.amqp_uri, self.urls, self.log_dir = amqp_uri, urls, log_dir
        self.running: list[tuple[str, subprocess.Popen]] = []
        self.clients: list[tuple[str, Client]] = []

    def start(self, service: str, **env: str) -> Client:
        port = find_free_port()
        environ = {**os.environ, "AMQP_URI": self.amqp_uri, f"{service.upper()}_DB_URL": self.urls[service],
                   f"{service.upper()}_ADDRESS": f"127.0.0.1:{port}", "LOG_LEVEL": "WARNING",
                   "OUTBOX_SWEEP_SECONDS": "0.5", "EVENT_RETRY_BASE_SECONDS": "0.05", **env}
        log = open(self.log_dir / f"{service}-{len(self.running)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "nameko", "run", "--config",
                                 str(ROOT / "services" / service / "config.yaml"), SERVICE_CLASSES[service]],
                                cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
        self.running.append((service, proc))
        client = Client(f"http://127.0.0.1:{port}")

        def healthy():
            assert proc.poll() is None, f"{service} exited: see {log.name}"
            try:
                return client.get("/health").status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(healthy, timeout=30, interval=0.2, what=f"{service} to answer /health")
        client.process, client.log_path = proc, Path(log.name)
        self.clients.append((service, client))
        return client

    def live(self) -> dict[str, str]:
        """Service → the base URL of its latest process still running."""
        urls: dict[str, str] = {}
        for name, client in reversed(self.clients):
            if client.process.poll() is None:
                urls.setdefault(name, client.base)
        return urls

    def check(self, wait: float = 20) -> "Report":
        """`drive check` on the running services (waiting for events in flight to land): the report."""
        call = partial(api_client.call, role="ops", unreachable_hint="", refused_exit=2)
        return audit_until_clean(self.live(), call, partial(count_dead_letters, self.amqp_uri), wait=wait)

    def stop_all(self) -> None:
        for _, proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in self.running:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


class Databases(dict):
    """Each service's fresh database, created the first time a test asks for it."""

    def __init__(self, make) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, service: str) -> str:
        self[service] = url = self.make(service)
        return url


@pytest.fixture
def system(make_database, rabbit_config, tmp_path):
    urls = Databases(make_database)
    engine = make_engine(urls["reservations"], pool_size=1)
    with Session(engine) as session, session.begin():
        load_pickup_points(session)
    engine.dispose()
    declare_topology([ReservationsService, InventoryService, BibliobusService, NotificationsService],
                     {"AMQP_URI": rabbit_config["AMQP_URI"]})
    processes = Processes(rabbit_config["AMQP_URI"], urls, tmp_path)
    tap = EventTap(rabbit_config["AMQP_URI"], {"reservations.events": "#", "inventory.events": "#",
                                               "bibliobus.events": "#"})
    processes.tap, processes.vhost = tap, rabbit_config["vhost"]
    yield processes
    try:
        # The end of every end-to-end test: whatever it did, the services agree (`drive check`).
        if {"reservations", "inventory"} <= processes.live().keys():
            report = processes.check()
            assert report.clean, f"drive check: {report.as_dict()}"
    finally:
        processes.stop_all()
        tap.close()
