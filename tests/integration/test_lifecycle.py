"""Start and stop, as ops do it: a service is a `nameko run` process; Kubernetes and `docker stop` send it one
SIGTERM, a terminal a SIGINT (and an impatient person a second signal); `drive up` runs them all and a terminal's
Ctrl-C reaches its whole process group. Each stops within 10 s, with exit code 0, without a traceback, and
without losing the work it was doing. Each process on SQLite files of its own in a fresh vhost."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from kombu import Connection, Exchange, Producer
from nameko.testing.utils import find_free_port
from sqlalchemy import create_engine, func, select

from services import DATABASES
from services.cli import SERVICE_CLASSES, SERVICES
from services.common.envelope import REGISTRY
from services.common.messaging import declare_topology
from services.common.migrate import upgrade
from services.reservations.models import CatalogueTitle
from services.reservations.service import ReservationsService
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
STOP_WITHIN = 10.0


def wait_answering(proc: subprocess.Popen, port: int, name: str, exited: Callable[[], str], timeout: float,
                   interval: float) -> None:
    """Until the service on `port` answers /health; `proc` (the service, or `drive up`) exiting first fails."""
    def healthy() -> bool:
        assert proc.poll() is None, exited()
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(healthy, timeout=timeout, interval=interval, what=f"{name} to answer /health")


class Service:
    """One `nameko run` of a service, its output in a file."""

    def __init__(self, name: str, tmp_path: Path, amqp_uri: str, **env: str) -> None:
        self.name, self.port = name, find_free_port()
        self.db_url = f"sqlite:///{tmp_path / f'{name}.db'}"
        if name in DATABASES and not (tmp_path / f"{name}.db").exists():
            upgrade(name, self.db_url)
        self.log_path = tmp_path / f"{name}-{time.monotonic_ns()}.log"
        environ = {**os.environ, "DRIVE_ENV": "dev", "AMQP_URI": amqp_uri, f"{name.upper()}_DB_URL": self.db_url,
                   f"{name.upper()}_ADDRESS": f"127.0.0.1:{self.port}", **env}
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "nameko", "run", "--config",
                                          str(ROOT / "services" / name / "config.yaml"), SERVICE_CLASSES[name]],
                                         cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)

    def wait_healthy(self) -> None:
        wait_answering(self.proc, self.port, self.name, lambda: f"{self.name} exited:\n{self.output()}", timeout=60,
                       interval=0.2)
        # /health answers as soon as the web server is up; the consumers may still be starting: a real SIGTERM
        # can come then too (the stop waits for the start), but the figures below are about a started service.
        time.sleep(1)

    def stop(self, *signals: signal.Signals, gap: float = 0.3) -> tuple[int | None, float]:
        """Send the signals `gap` seconds apart: (exit code, or None if still running after 10 s; seconds)."""
        started = time.monotonic()
        for sig in signals:
            self.proc.send_signal(sig)
            time.sleep(gap)
        try:
            code: int | None = self.proc.wait(timeout=max(STOP_WITHIN - (time.monotonic() - started), 0.1))
        except subprocess.TimeoutExpired:
            code = None
            self.proc.kill()
            self.proc.wait()
        return code, time.monotonic() - started

    def output(self) -> str:
        return self.log_path.read_text()


def assert_clean(service: Service, code: int | None, took: float) -> None:
    output = service.output()
    assert code == 0, f"{service.name}: exit code {code} after {took:.1f}s (None: still running at 10 s)\n{output}"
    assert took < STOP_WITHIN
    assert "Traceback" not in output and "AssertionError" not in output, output


@pytest.mark.time_limit(120)
@pytest.mark.parametrize("name", SERVICES)
def test_one_sigterm_stops_a_service_within_seconds_without_a_traceback(name, tmp_path, rabbit_config):
    service = Service(name, tmp_path, rabbit_config["AMQP_URI"])
    service.wait_healthy()
    code, took = service.stop(signal.SIGTERM)
    assert_clean(service, code, took)
    assert took < 6, f"{name} took {took:.1f}s to stop"  # a few seconds: the consumers' 1 s polls, twice
    assert service.output().count(f"stopping services: {name}") == 1


@pytest.mark.time_limit(120)
@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGTERM)],
                         ids=["sigint-then-sigterm", "sigterm-twice"])
def test_a_second_signal_waits_for_the_first_stop(name, signals, tmp_path, rabbit_config):
    """nameko stops the container once per signal: the second stop used to stop the timers again (`AssertionError:
    Trying to re-send() an already-triggered event`) and the queue consumers again (waiting forever: killed)."""
    service = Service(name, tmp_path, rabbit_config["AMQP_URI"])
    service.wait_healthy()
    code, took = service.stop(*signals)
    assert_clean(service, code, took)


@pytest.mark.time_limit(120)
def test_a_sigterm_while_the_service_starts(tmp_path, rabbit_config):
    """Kubernetes may stop a pod that is still starting: the stop waits for the start, then stops what started."""
    service = Service("bibliobus", tmp_path, rabbit_config["AMQP_URI"])
    wait_for(lambda: "starting services" in service.output(), timeout=60, interval=0.05,
             what="nameko to start the container")
    code, took = service.stop(signal.SIGTERM)
    assert_clean(service, code, took)


@pytest.mark.time_limit(240)
def test_messages_being_handled_at_sigterm_are_finished_or_handed_back(tmp_path, rabbit_config):
    """Events are flowing when SIGTERM arrives: each is either handled (its effect committed, then acked) or
    goes back to the queue, and the next process handles it. None is lost."""
    amqp_uri = rabbit_config["AMQP_URI"]
    declare_topology([ReservationsService], {"AMQP_URI": amqp_uri})
    first = Service("reservations", tmp_path, amqp_uri)
    first.wait_healthy()
    sent = 3000
    with Connection(amqp_uri) as conn:  # one connection: faster than the service takes them
        producer = Producer(conn.default_channel)
        exchange = Exchange("inventory.events", type="topic", durable=True)
        for n in range(sent):
            event = REGISTRY.build("inventory", "title_catalogued", {"title_id": f"t-{n:04d}", "title": f"Titre {n}",
                                                                    "author": "Karin Holm", "material": "book"})
            producer.publish(event.to_message(), exchange=exchange, routing_key="title_catalogued",
                             serializer="json")
    engine = create_engine(first.db_url)

    def titles() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(CatalogueTitle)).scalar()

    wait_for(lambda: titles() > 0, timeout=60, interval=0.05, what="the first events handled")
    code, took = first.stop(signal.SIGTERM)
    assert_clean(first, code, took)
    handled_by_first = titles()
    assert 0 < handled_by_first < sent, "the stop came too late to prove anything: send more events"
    second = Service("reservations", tmp_path, amqp_uri)
    wait_for(lambda: titles() == sent, timeout=120, interval=0.5, what="every event handled once restarted")
    second.stop(signal.SIGTERM)
    engine.dispose()


@pytest.mark.time_limit(240)
def test_ctrl_c_on_drive_up_stops_everything_within_10_s(tmp_path, rabbit_config):
    """A terminal's Ctrl-C goes to the whole foreground process group. The services run in sessions of their
    own: only `drive up` gets it, and sends each service ONE SIGTERM (each says "stopping services" once)."""
    ports = {name: find_free_port() for name in SERVICES}
    env = {**os.environ, "AMQP_URI": rabbit_config["AMQP_URI"], "LOG_LEVEL": "INFO", "COLUMNS": "200"}
    env.pop("DRIVE_ENV", None)  # `drive up` sets it for its services
    for name in SERVICES:
        env[f"{name.upper()}_DB_URL"] = f"sqlite:///{tmp_path / f'{name}.db'}"
        env[f"{name.upper()}_ADDRESS"] = f"127.0.0.1:{ports[name]}"
    log_path = tmp_path / "drive-up.log"
    with open(log_path, "w") as log:
        up = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--no-demo"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for name, port in ports.items():
            wait_answering(up, port, name, log_path.read_text, timeout=120, interval=0.3)
        time.sleep(1)
        banner = log_path.read_text()
        for name, port in ports.items():  # the ports actually used, not the defaults
            assert re.search(rf"{name}\s+http://127\.0\.0\.1:{port}\s", banner), banner
        started = time.monotonic()
        os.killpg(up.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        up.wait(timeout=STOP_WITHIN + 5)
        took = time.monotonic() - started
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    output = log_path.read_text()
    assert took < STOP_WITHIN, f"drive up took {took:.1f}s\n{output}"
    assert up.returncode == 0, output
    assert "Traceback" not in output and "did not stop in time" not in output, output
    for name, port in ports.items():
        assert output.count(f"stopping services: {name}") == 1, output
        assert f"{name} stopped (0)" in output, output
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
