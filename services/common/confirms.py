"""Publishing a batch with publisher confirms, pipelined: send every message, then wait once for the broker's
confirms, rather than one round trip per message.

Waiting for each confirm in turn made the outbox relay the pipeline's bottleneck: in a busy eventlet process,
every wait also waits for a turn of the hub behind the busy workers, so a relay published a few hundred rows a
second while placements came faster, and the outbox grew for the whole run. Only the messages the broker
confirmed are reported; the caller marks those sent, and the others stay for the next attempt.
"""

import time
from collections.abc import Sequence
from typing import NamedTuple

from amqp.exceptions import NotFound
from kombu import Connection, Producer


class Outgoing(NamedTuple):
    body: str  # JSON text, published as is
    exchange: str
    routing_key: str
    message_id: str


class ConfirmedChannel:
    """One connection and one channel in confirm mode. After an error, discard it (`close`) and open another:
    the broker closes a channel on a refused publish (e.g. an exchange that does not exist)."""

    def __init__(self, uri: str, connect_timeout: float = 5, confirm_timeout: float = 10) -> None:
        connection = Connection(uri, connect_timeout=connect_timeout)
        try:
            # One attempt, no kombu retry loop (~6 s of sleeps): the caller claims rows only after this.
            connection.ensure_connection(max_retries=0)
            channel = connection.channel()
            channel.confirm_select()
        except Exception:
            connection.release()
            raise
        self.connection = connection
        self.producer = Producer(channel)
        self.confirm_timeout = confirm_timeout
        self.last_tag = 0  # the broker numbers a confirm-mode channel's publishes 1, 2, 3, …
        self.first_tag = 1
        self.settled: dict[int, bool] = {}  # delivery tag → confirmed (True) or refused (False)
        self.exchanges: set[str] = set()  # known to exist on this connection
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)

    def _settle(self, tag: int, multiple: bool, ok: bool) -> None:
        for settled in range(self.first_tag if multiple else tag, tag + 1):
            self.settled.setdefault(settled, ok)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, True)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, False)

    def publish_all(self, messages: Sequence[Outgoing]) -> tuple[list[int], Exception | None]:
        """Publish in order, persistent; returns the positions the broker confirmed, and the error that stopped
        the batch if one did (then some positions may be missing: not published, refused or not confirmed).
        A message whose exchange does not exist stops the batch before it: published, the broker would close
        the channel, and the confirms still in flight for the messages before it would be lost (republished)."""
        self.first_tag, self.settled = self.last_tag + 1, {}
        error: Exception | None = None
        try:
            missing = next((m.exchange for m in messages if not self._exchange_exists(m.exchange)), None)
            if missing is not None:
                error = ExchangeMissing(f"exchange {missing!r} does not exist")
                messages = messages[:[m.exchange for m in messages].index(missing)]
            for message in messages:
                self.producer.publish(message.body, exchange=message.exchange, routing_key=message.routing_key,
                                      content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                                      message_id=message.message_id, retry=False)
                self.last_tag += 1
            deadline = time.monotonic() + self.confirm_timeout
            while len(self.settled) < self.last_tag - self.first_tag + 1:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no publisher confirm within {self.confirm_timeout} s")
                self.connection.drain_events(timeout=remaining)
        except Exception as exc:  # the broker went away or closed the channel: keep what was confirmed
            error = error or exc
        confirmed = [i for i in range(len(messages)) if self.settled.get(self.first_tag + i) is True]
        if error is None and len(confirmed) < len(messages):
            error = RuntimeError(f"the broker refused {len(messages) - len(confirmed)} message(s) (nack)")
        return confirmed, error

    def _exchange_exists(self, name: str) -> bool:
        """Asked once per exchange and connection, on a throwaway channel (a passive declare of a missing
        exchange closes the channel it runs on)."""
        if name in self.exchanges:
            return True
        channel = self.connection.channel()
        try:
            channel.exchange_declare(exchange=name, type="topic", passive=True)
        except NotFound:
            return False
        finally:
            if channel.is_open:
                channel.close()
        self.exchanges.add(name)
        return True

    def close(self) -> None:
        self.connection.release()


class ExchangeMissing(Exception):
    """A row names an exchange the broker does not have (yet): it and the rows after it wait."""
