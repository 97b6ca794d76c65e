"""Stand-ins for what lies outside the system: a real SMTP server and an SMS gateway on loopback."""

import json
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from kombu import Connection, Exchange, Producer
from nameko.testing.utils import find_free_port

from services.common.envelope import REGISTRY, Event


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


def publish(amqp_uri: str, source: str, type_: str, data: dict, event: Event | None = None) -> Event:
    """Publish an event as its service would (the same envelope); give `event` to deliver one again."""
    event = event or REGISTRY.build(source, type_, data)
    with Connection(amqp_uri) as conn:
        Producer(conn.default_channel).publish(
            event.to_message(), exchange=Exchange(f"{source}.events", type="topic", durable=True),
            routing_key=type_, serializer="json")
    return event
