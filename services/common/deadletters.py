"""Dead letters, for ops (`drive dead-letters list/replay`): see them without taking them off the queue, and
replay them to the one handler queue they died in (through the default exchange, so the other subscribers of
the event do not get it a second time)."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu import Connection, Producer
from kombu.message import Message

from services.common.messaging import dead_letter_topology

log = logging.getLogger(__name__)

PREVIEW_CHARS = 120
# Headers the broker adds when it dead-letters; a replayed message starts its attempts afresh.
DEATH_HEADERS = ("x-death", "x-first-death-queue", "x-first-death-reason", "x-first-death-exchange",
                 "x-last-death-queue", "x-last-death-reason", "x-last-death-exchange", "x-delivery-count")
KEPT_PROPERTIES = ("message_id", "correlation_id", "type", "timestamp")


@dataclass(frozen=True)
class DeadLetter:
    position: int
    event_id: str | None
    event_type: str | None
    source: str | None
    queue: str | None
    reason: str | None
    count: int
    first_death_at: datetime | None
    preview: str


def list_dead_letters(amqp_uri: str, limit: int = 100) -> list[DeadLetter]:
    """The first `limit` dead letters, in queue order. Nothing is consumed: every message is fetched
    unacknowledged and goes back to its place when the channel closes."""
    with _dead_letter_queue(amqp_uri) as (_conn, queue, waiting):
        return [describe(position, message)
                for position, message in enumerate(_fetch(queue, min(limit, waiting)), start=1)]


def count_dead_letters(amqp_uri: str) -> int:
    with _dead_letter_queue(amqp_uri) as (_conn, _queue, waiting):
        return waiting


def replay(amqp_uri: str, event_id: str | None = None) -> int:
    """Republish one event's dead letters (or all of them) to the queue each died in, then ack them.
    Returns how many were replayed. Others stay in the dead-letter queue, in order."""
    replayed = 0
    with _dead_letter_queue(amqp_uri) as (conn, queue, waiting):
        producer = Producer(conn.channel())
        known: dict[str, bool] = {}
        # Only what was there at the start: a replay that dies again must not be replayed in this same loop.
        for message in _fetch(queue, waiting):
            target = original_queue(message.headers)
            if event_id is not None and _event_id(message) != event_id:
                continue
            if target is not None and target not in known:
                known[target] = _queue_exists(conn, target)
            if target is None or not known[target]:
                log.warning("dead letter left in place: its original queue is unknown or gone",
                            extra={"queue": target, "event_id": _event_id(message)})
                continue
            republish(producer, message, target)
            message.ack()
            replayed += 1
    return replayed


@contextmanager
def _dead_letter_queue(amqp_uri: str) -> Iterator[tuple[Connection, Any, int]]:
    with Connection(amqp_uri, transport_options={"confirm_publish": True}, connect_timeout=5) as conn:
        channel = conn.channel()
        _, dlq = dead_letter_topology()
        queue = dlq(channel)
        queue.declare()
        _, waiting, _ = queue.queue_declare(passive=True)
        try:
            yield conn, queue, waiting
        finally:
            channel.close()  # unacked messages go back to the queue, in their original order


def _fetch(queue: Any, limit: int) -> Iterator[Message]:
    for _ in range(limit):
        message = queue.get(no_ack=False)
        if message is None:
            return
        yield message


def deaths(headers: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The broker's `x-death` entries, most recent first."""
    return list((headers or {}).get("x-death") or [])


def original_queue(headers: dict[str, Any] | None) -> str | None:
    latest = deaths(headers)
    return latest[0].get("queue") if latest else None


def describe(position: int, message: Message) -> DeadLetter:
    history = deaths(message.headers)
    latest = history[0] if history else {}
    body = _json_body(message)
    return DeadLetter(
        position=position,
        event_id=_event_id(message),
        event_type=body.get("type") or next(iter(latest.get("routing-keys") or []), None),
        source=body.get("source"),
        queue=latest.get("queue"),
        reason=latest.get("reason"),
        count=int(sum(entry.get("count", 0) for entry in history)),
        first_death_at=_utc(history[-1].get("time")) if history else None,
        preview=_preview(message.body),
    )


def republish(producer: Producer, message: Message, queue_name: str) -> None:
    """Same body, content type and headers (minus the death record), to one queue, with a confirm."""
    headers = {k: v for k, v in (message.headers or {}).items() if k not in DEATH_HEADERS}
    properties = message.properties or {}
    extra = {k: properties[k] for k in KEPT_PROPERTIES if properties.get(k)}
    producer.publish(
        message.body, exchange="", routing_key=queue_name, headers=headers,
        content_type=message.content_type or "application/octet-stream",
        content_encoding=message.content_encoding or "binary",
        delivery_mode=2, retry=False, **extra,
    )


def _queue_exists(conn: Connection, name: str) -> bool:
    # A publish to a missing queue would be confirmed and dropped: check first, on a throwaway channel
    # (a passive declare of a missing queue closes the channel it runs on).
    channel = conn.channel()
    try:
        channel.queue_declare(queue=name, passive=True)
        return True
    except Exception:  # the broker says 404: no such queue
        return False
    finally:
        if channel.is_open:
            channel.close()


def _json_body(message: Message) -> dict[str, Any]:
    try:
        body = json.loads(message.body)
    except (TypeError, ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _event_id(message: Message) -> str | None:
    found = (message.properties or {}).get("message_id") or _json_body(message).get("id")
    return str(found) if found is not None else None


def _utc(moment: datetime | None) -> datetime | None:
    # py-amqp decodes AMQP timestamps as naive UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _preview(body: bytes | str) -> str:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
