"""Helpers for every tier of tests: wait for a condition, talk to a service over HTTP, watch an exchange; the
scenario data the integration and end-to-end tiers share (a catalogue's CSV header, drive hours, a bibliobus
stop); and stand-ins for what lies outside the system (a real SMTP server and an SMS gateway on loopback).
A tier's own scenario steps live in its `helpers` module (tests/integration/helpers.py, tests/e2e/helpers.py)."""

import json
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import requests
from aiosmtpd.controller import Controller
from kombu import Connection, Exchange, Queue
from nameko.testing.utils import find_free_port

from services.events import WEEKDAYS

CSV_HEADER = "isbn,title,author,material,barcode,site,shelf_mark\n"
PARIS = ZoneInfo("Europe/Paris")
EVERY_DAY = {day: ["09:00-12:00", "14:00-19:00"] for day in WEEKDAYS}


def wait_for(condition: Callable[[], Any], timeout: float = 10, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


class Client:
    """requests against one service, with a default token."""

    def __init__(self, base: str, headers: dict | None = None) -> None:
        self.base = base.rstrip("/")
        self.headers = headers or {}

    def call(self, method: str, path: str, headers: dict | None = None, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.base + path, headers={**self.headers, **(headers or {})},
                                timeout=15, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)


class EventTap:
    """An outside consumer, as a staff app would bind one: a queue on the services' exchanges."""

    def __init__(self, amqp_uri: str, bindings: dict[str, str | list[str]]) -> None:
        self.connection = Connection(amqp_uri)
        self.channel = self.connection.channel()
        self.queue = Queue(exclusive=True, auto_delete=True, channel=self.channel)
        self.queue.declare()
        for exchange, keys in bindings.items():
            ex = Exchange(exchange, type="topic", durable=True, channel=self.channel)
            ex.declare()
            for key in [keys] if isinstance(keys, str) else keys:
                self.queue.bind_to(ex, routing_key=key)
        self.seen: list[dict] = []

    def drain(self) -> list[dict]:
        while True:
            message = self.queue.get(no_ack=True)
            if message is None:
                return self.seen
            self.seen.append(message.decode())

    def of_type(self, type_: str, **match: Any) -> list[dict]:
        self.drain()
        return [m for m in self.seen if m["type"] == type_
                and all(m["data"].get(k) == v for k, v in match.items())]

    def wait(self, type_: str, count: int = 1, timeout: float = 10, **match: Any) -> list[dict]:
        return wait_for(lambda: (found := self.of_type(type_, **match)) and len(found) >= count and found,
                        timeout, what=f"{count} × {type_} {match}")

    def close(self) -> None:
        self.connection.release()


# --- scenario data ---------------------------------------------------------------------------------------


def today() -> date:
    return datetime.now(PARIS).date()


def coming_slots(reservations: Client, point: str = "central-adult") -> list[dict]:
    """The point's free and full slots from tomorrow to a week on (today may have none left)."""
    found = reservations.get(f"/pickup-points/{point}/slots",
                                   params={"from": (today() + timedelta(days=1)).isoformat(),
                                           "to": (today() + timedelta(days=8)).isoformat()})
    assert found.status_code == 200, found.text
    return found.json()


def daily_visits(margin_hours: int = 3) -> list[dict]:
    """A visit every day at an hour far from now, so that "the next visit" cannot change during a test."""
    hour = (datetime.now(ZoneInfo("Europe/Paris")).hour + margin_hours) % 24
    hour = 1 if hour >= 23 else hour
    return [{"weekday": day, "arrives": f"{hour:02d}:00", "departs": f"{hour:02d}:45"}
            for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")]


def stop_body(stop_id: str, capacity: int = 10, **extra) -> dict:
    return {"id": stop_id, "name": f"Arrêt {stop_id}", "district": "Saint-Rémy", "latitude": 46.7647,
            "longitude": 4.8331, "capacity_per_visit": capacity, "visits": daily_visits(), **extra}


# --- what lies outside the system --------------------------------------------------------------------------


class Mailbox:
    """aiosmtpd handler: keeps every message it accepts; `answers` lists the refusals to give the next ones
    (451: try later, 550: no such mailbox)."""

    REFUSALS = {451: "451 4.3.0 try again later", 550: "550 5.1.1 no such mailbox"}

    def __init__(self) -> None:
        self.messages: list = []
        self.answers: list[int] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.answers:
            return self.REFUSALS[self.answers.pop(0)]
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def smtp_server() -> tuple[Controller, Mailbox, int]:
    mailbox, port = Mailbox(), find_free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, mailbox, port


class SmsGateway:
    """A local HTTP server answering like an SMS provider; `answers` lists the status codes to give next."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.answers: list[int] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = gateway.answers.pop(0) if gateway.answers else 202
                if status < 300:
                    gateway.received.append({**body, "authorization": self.headers.get("Authorization")})
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", find_free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/messages"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
