"""The services as real processes (`nameko run`), each on a fresh PostgreSQL database, in a fresh vhost. Every
service runs as two replicas (as on Kubernetes, infra/k8s): two processes on one database and one vhost, each
on its own HTTP port, requests spread over them in turn."""

import itertools
import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest
import requests
from nameko.testing.utils import find_free_port
from sqlalchemy.orm import Session

from services import DATABASES
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
REPLICAS = 2
# Short timers, so that both replicas' timers run (and overlap) within a test; a test may shorten them further.
TIMERS = {"EXPIRY_CHECK_SECONDS": "1", "OVERDUE_CHECK_SECONDS": "1", "QUARANTINE_CHECK_SECONDS": "1",
          "NOTIFY_SEND_SECONDS": "0.2", "DEMAND_EVALUATION_SECONDS": "1"}


class Replica(Client):
    """One process of a service: its HTTP base, its process, its log, how many requests it answered."""

    def __init__(self, base: str, process: subprocess.Popen, log_path: Path) -> None:
        super().__init__(base)
        self.process, self.log_path, self.answered = process, log_path, 0

    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def timer_runs(self, entrypoint: str) -> list[datetime]:
        """When this process's timer `entrypoint` ran to its end (logged at DEBUG: start it with LOG_LEVEL=DEBUG)."""
        return [datetime.fromisoformat(x["timestamp"]) for x in self.log()
                if x.get("entrypoint") == entrypoint and x.get("event") == "worker done"]


class Service(Client):
    """A service's replicas behind one client, as behind a load balancer: each request goes to the next replica
    still running, in turn. `base` is the first replica's (for a tool that takes one URL per service)."""

    def __init__(self, name: str, replicas: list[Replica]) -> None:
        super().__init__(replicas[0].base)
        self.name, self.replicas, self.stopped = name, replicas, False
        self._turn = itertools.count()  # next() on a count is atomic under the GIL: threads share it safely

    def call(self, method: str, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
        running = [r for r in self.replicas if r.running()] or self.replicas
        replica = running[next(self._turn) % len(running)]
        answer = requests.request(method, replica.base + path, headers={**self.headers, **(headers or {})},
                                  timeout=15, **kwargs)
        replica.answered += 1
        return answer

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Every replica down (the test means it: the fixture does not count them as crashed)."""
        self.stopped = True
        for replica in self.replicas:
            if replica.running():
                replica.process.send_signal(sig)
        for replica in self.replicas:
            replica.process.wait(timeout=15)


class Processes:
    def __init__(self, amqp_uri: str, urls: dict, log_dir: Path) -> None:
        self.amqp_uri, self.urls, self.log_dir = amqp_uri, urls, log_dir
        self.services: list[Service] = []
        self.launched = 0

    def start(self, service: str, replicas: int = REPLICAS, **env: str) -> Service:
        """`replicas` processes of `service`, started together; returns once each answers /health."""
        return self.start_many({service: env}, replicas)[service]

    def start_many(self, services: dict[str, dict[str, str]], replicas: int = REPLICAS) -> dict[str, Service]:
        """Several services (name → its environment), all their processes started at once (a test waits for
        the slowest, not for their sum)."""
        started = {name: Service(name, [self._launch(name, env) for _ in range(replicas)])
                   for name, env in services.items()}
        for name, group in started.items():
            for replica in group.replicas:
                def healthy(replica=replica, name=name):
                    assert replica.running(), f"{name} exited: see {replica.log_path}"
                    return self._healthy(replica)

                wait_for(healthy, timeout=60, interval=0.2, what=f"{name} ({replica.base}) to answer /health")
            self.services.append(group)
        return started

    def _launch(self, service: str, env: dict[str, str]) -> Replica:
        # A test may give the address (a process restarted where its clients expect it); else a free port.
        address = env.get(f"{service.upper()}_ADDRESS") or f"127.0.0.1:{find_free_port()}"
        database = {f"{service.upper()}_DB_URL": self.urls[service]} if service in DATABASES else {}
        environ = {**os.environ, "AMQP_URI": self.amqp_uri, **database,
                   f"{service.upper()}_ADDRESS": address, "LOG_LEVEL": "WARNING",
                   "OUTBOX_SWEEP_SECONDS": "0.5", "EVENT_RETRY_BASE_SECONDS": "0.05", **TIMERS, **env}
        log_path = self.log_dir / f"{service}-{self.launched}.log"
        self.launched += 1
        with log_path.open("w") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([sys.executable, "-m", "nameko", "run", "--config",
                                     str(ROOT / "services" / service / "config.yaml"), SERVICE_CLASSES[service]],
                                    cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
        return Replica(f"http://{address}", proc, log_path)

    def replicas(self) -> list[tuple[str, Replica]]:
        return [(s.name, r) for s in self.services for r in s.replicas]

    def live(self) -> dict[str, str]:
        """Service → the base URL of a process of it still running (its latest): one URL per service, as
        `drive check` takes them (behind a load balancer, on Kubernetes)."""
        urls: dict[str, str] = {}
        for name, replica in reversed(self.replicas()):
            if replica.running():
                urls.setdefault(name, replica.base)
        return urls

    def unwell(self) -> list[str]:
        """The logs of the processes that exited, or no longer answer /health, though the test did not stop their
        service: `drive check` asks one URL per service, and the other replica could hide them."""
        return [str(r.log_path) for s in self.services if not s.stopped for r in s.replicas
                if not r.running() or not self._healthy(r)]

    @staticmethod
    def _healthy(replica: Replica) -> bool:
        try:
            return requests.get(replica.base + "/health", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    def check(self, wait: float = 20) -> "Report":
        """`drive check` on the running services (waiting for events in flight to land): the report."""
        call = partial(api_client.call, role="ops", unreachable_hint="", refused_exit=2)
        return audit_until_clean(self.live(), call, partial(count_dead_letters, self.amqp_uri), wait=wait)

    def stop_all(self) -> None:
        for _, replica in self.replicas():
            if replica.running():
                replica.process.send_signal(signal.SIGTERM)
        for _, replica in self.replicas():
            try:
                replica.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                replica.process.kill()


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
        # The end of every end-to-end test: every replica still up, and whatever the test did, the services agree
        # (`drive check`).
        assert not (unwell := processes.unwell()), f"replicas exited or unhealthy during the test: {unwell}"
        if {"reservations", "inventory"} <= processes.live().keys():
            report = processes.check()
            assert report.clean, f"drive check: {report.as_dict()}"
    finally:
        processes.stop_all()
        tap.close()
