"""Small helpers for tests: wait for a condition, talk to a service over HTTP, watch an exchange."""

import time
from collections.abc import Callable
from typing import Any

import requests
from kombu import Connection, Exchange, Queue


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
