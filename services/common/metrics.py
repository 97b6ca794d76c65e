"""Prometheus metrics, once for every service: what `GET /metrics` answers (docs/operations.md lists them).

Each service container has its own registry (`of(container)`): the test suite runs several containers in one
process, production one per process, and neither may see another's counts. Every series carries a `service`
label, so a dashboard need not rely on how the scrape jobs are named. Counters move where the events pass (the
HTTP app, the event handlers, the timers, the notification rounds); the outbox, the dead-letter queue and the
service's own gauges (`Reading`) are read when Prometheus scrapes, each with a short timeout, and a source that
does not answer is reported (`drive_metrics_source_up` 0), never raised. Labels hold route templates, event types,
timer and channel names: never an id, a card or an address.
"""

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import eventlet
import prometheus_client
from kombu import Connection
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.timer import Timer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from services.common import clock
from services.common.database import Database
from services.common.relay import OutboxRelay
from services.common.reliability import DUPLICATES_KEY
from services.common.settings import amqp_uri

log = logging.getLogger(__name__)

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
SCRAPE_TIMEOUT_SECONDS = 2.0  # per source (database, broker): a scrape answers within a few seconds, whatever is down
UNMATCHED_ROUTE = "(unmatched)"  # every path no route knows, under one label (a scanner must not add series)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
EVENT_OUTCOMES = ("done", "duplicate", "retried", "dead_lettered")
NOTIFICATION_OUTCOMES = ("sent", "failed", "obsolete")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

prometheus_client.disable_created_metrics()  # the `_created` series would double the output, and nothing reads them


@dataclass(frozen=True)
class Reading:
    """A service's own gauge, read from its database at scrape: `Reading("drive_bibliobus_stops_enabled", "…",
    count)`, `count(session) -> float`. Listed in the service class's `readings`."""

    name: str
    documentation: str
    read: Callable[[Session], float]


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


class Instruments:
    """The registry of one container and its instruments."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.http_requests = Counter("drive_http_requests", "HTTP requests answered, by route template, method and "
                                     "status", ("service", "route", "method", "status"), registry=r)
        self.http_duration = Histogram("drive_http_request_duration_seconds", "Time to answer an HTTP request",
                                       ("service", "route", "method"), buckets=DURATION_BUCKETS, registry=r)
        self.events = Counter("drive_events_handled", "Event deliveries handled, by event type and outcome "
                              "(done, duplicate, retried, dead_lettered)", ("service", "event_type", "outcome"),
                              registry=r)
        self.event_duration = Histogram("drive_event_handling_duration_seconds", "Time a handler worker took "
                                        "(a batch counts once)", ("service", "event_type"), buckets=DURATION_BUCKETS,
                                        registry=r)
        self.timer_success = Gauge("drive_timer_last_success_timestamp_seconds", "Unix time of the timer's last "
                                   "successful run (the container's start until its first)", ("service", "timer"),
                                   registry=r)
        self.timer_interval = Gauge("drive_timer_interval_seconds", "The timer's configured interval",
                                    ("service", "timer"), registry=r)
        # Registered only by a service that sends notifications (`count_notifications`).
        self.notifications = Counter("drive_notifications", "Notification deliveries settled, by channel and "
                                     "outcome (sent, failed, obsolete)", ("service", "channel", "outcome"),
                                     registry=None)
        self.counting_notifications = False
        self.started: WeakKeyDictionary = WeakKeyDictionary()

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method_label(method)
        self.http_requests.labels(self.service, route, method, str(status)).inc()
        self.http_duration.labels(self.service, route, method).observe(seconds)

    def handles(self, event_type: str) -> None:
        """Every outcome of this event type from zero (so that `rate()` sees the first)."""
        for outcome in EVENT_OUTCOMES:
            self.events.labels(self.service, event_type, outcome)

    def event(self, event_type: str, outcome: str, count: int = 1) -> None:
        if count > 0:
            self.events.labels(self.service, event_type, outcome).inc(count)

    def worker_started(self, worker_ctx: Any) -> None:
        self.started[worker_ctx] = time.monotonic()

    def handled(self, event_type: str, worker_ctx: Any) -> None:
        """A handler worker ended: how long it took."""
        started = self.started.pop(worker_ctx, None)
        if started is not None:
            self.event_duration.labels(self.service, event_type).observe(time.monotonic() - started)

    def timer(self, name: str, interval: float) -> None:
        self.timer_interval.labels(self.service, name).set(interval)
        self.timer_succeeded(name)  # the container's start stands for the first run until it happens

    def timer_succeeded(self, name: str) -> None:
        self.timer_success.labels(self.service, name).set(time.time())

    def count_notifications(self, channels: Iterable[str]) -> None:
        """Expose the notification counter, each channel and outcome from zero (so that `rate()` sees the first)."""
        if not self.counting_notifications:
            self.registry.register(self.notifications)
            self.counting_notifications = True
        for channel in channels:
            for outcome in NOTIFICATION_OUTCOMES:
                self.notifications.labels(self.service, channel, outcome)

    def notifications_settled(self, deliveries: Iterable[Any]) -> None:
        """Count the deliveries (anything with `channel` and `status`) that reached an outcome, once committed."""
        for delivery in deliveries:
            if delivery.status in NOTIFICATION_OUTCOMES:
                self.notifications.labels(self.service, delivery.channel, delivery.status).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def of(container: Any) -> Instruments:
    """The instruments of this container (created on first use: any extension may count first). Kept on the
    container itself: they live and go with it (extensions hold it through a weak proxy)."""
    found = getattr(container, "drive_instruments", None)
    if found is None:
        found = Instruments(container.service_name)
        container.drive_instruments = found
    return found


def duplicates_in(worker_ctx: Any) -> int:
    """How many deliveries this worker's sessions found already processed (`reliability.note_duplicates`)."""
    total = 0
    for provider in worker_ctx.container.dependencies:
        if isinstance(provider, Database):
            session = provider.sessions.get(worker_ctx)
            if session is not None:
                total += session.info.get(DUPLICATES_KEY, 0)
    return total


def _bounded(seconds: float, read: Callable[[], Any]) -> Any:
    """`read()`, or raise TimeoutError once `seconds` passed (eventlet's Timeout is a BaseException: kept in here)."""
    timeout = eventlet.Timeout(seconds)
    try:
        return read()
    except eventlet.Timeout as exc:
        if exc is not timeout:  # someone else's
            raise
        raise TimeoutError(f"no answer within {seconds} s") from None
    finally:
        timeout.cancel()


def outbox_state(session: Session, outbox_model: Any) -> tuple[int, float]:
    """(unsent rows, age in seconds of the oldest): one indexed query (`sent_at` is indexed)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {int(SCRAPE_TIMEOUT_SECONDS * 1000)}"))
    count, oldest = session.execute(
        select(func.count(), func.min(outbox_model.created_at)).where(outbox_model.sent_at.is_(None))).one()
    age = (clock.now() - oldest).total_seconds() if oldest is not None else 0.0
    return int(count), max(age, 0.0)


def dead_letter_depth(uri: str, queue: str) -> int:
    """Messages waiting in the dead-letter queue: a passive declare (it creates nothing, consumes nothing)."""
    with Connection(uri, connect_timeout=SCRAPE_TIMEOUT_SECONDS) as conn:
        _, waiting, _ = conn.default_channel.queue_declare(queue=queue, passive=True)
        return int(waiting)


class ScrapeTimeCollector(Collector):
    """What is read when Prometheus scrapes: outbox backlog and age, dead letters, the service's readings."""

    def __init__(self, container: Any) -> None:
        self.container = container

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from services.common.messaging import DEAD_LETTER_QUEUE  # messaging counts here: imported late

        service = self.container.service_name
        deps = self.container.dependencies
        database = next((d for d in deps if isinstance(d, Database)), None)
        relay = next((d for d in deps if isinstance(d, OutboxRelay)), None)
        up = GaugeMetricFamily("drive_metrics_source_up", "1 when the source of scrape-time metrics answered",
                               labels=["service", "source"])
        if database is not None:
            yield from self._from_database(service, database, relay, up)
        depth = GaugeMetricFamily("drive_dead_letters", "Messages waiting in the dead-letter queue (shared by all "
                                  "services)", labels=["service"])
        try:
            depth.add_metric([service], _bounded(SCRAPE_TIMEOUT_SECONDS, lambda: dead_letter_depth(
                amqp_uri(self.container.config), DEAD_LETTER_QUEUE)))
            up.add_metric([service, "broker"], 1)
            yield depth
        except Exception as exc:  # a scrape reports, never fails
            log.warning("metrics: the dead-letter queue did not answer", extra={"error": repr(exc)})
            up.add_metric([service, "broker"], 0)
        yield up

    def _from_database(self, service: str, database: Any, relay: Any, up: GaugeMetricFamily) -> Iterator[Any]:
        readings: Iterable[Reading] = getattr(self.container.service_cls, "readings", ())

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, documentation, labels=["service"])
            family.add_metric([service], value)
            return family

        def read() -> list[GaugeMetricFamily]:
            families = []
            with database.session() as session, session.begin():
                if relay is not None:
                    backlog, age = outbox_state(session, relay.outbox_model)
                    families.append(gauge("drive_outbox_backlog", "Outbox rows not yet published", backlog))
                    families.append(gauge("drive_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished "
                                          "outbox row (0 when none)", age))
                families.extend(gauge(r.name, r.documentation, float(r.read(session))) for r in readings)
            return families

        try:
            yield from _bounded(SCRAPE_TIMEOUT_SECONDS, read)
            up.add_metric([service, "database"], 1)
        except Exception as exc:
            log.warning("metrics: the database did not answer", extra={"error": repr(exc)})
            up.add_metric([service, "database"], 0)


class ServiceMetrics(DependencyProvider):
    """In every DriveService: times workers, counts timers' successful runs, and serves the scrape."""

    def setup(self) -> None:
        self.instruments = of(self.container)
        self.instruments.registry.register(ScrapeTimeCollector(self.container))

    def start(self) -> None:
        channels = getattr(self.container.service_cls, "notification_channels", ())
        if channels:
            self.instruments.count_notifications(channels)
        # Not in setup: extensions set up concurrently, and a ConfiguredTimer learns its interval in its own.
        for entrypoint in self.container.entrypoints:
            if isinstance(entrypoint, Timer) and entrypoint.interval is not None:
                self.instruments.timer(entrypoint.method_name, entrypoint.interval)
            elif isinstance(entrypoint, EventHandler):
                self.instruments.handles(entrypoint.event_type)

    def get_dependency(self, worker_ctx: Any) -> Instruments:
        return self.instruments

    def worker_setup(self, worker_ctx: Any) -> None:
        self.instruments.worker_started(worker_ctx)

    def worker_result(self, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> None:
        if isinstance(worker_ctx.entrypoint, Timer):
            self.instruments.started.pop(worker_ctx, None)
            if exc_info is None:
                self.instruments.timer_succeeded(worker_ctx.entrypoint.method_name)

    def worker_teardown(self, worker_ctx: Any) -> None:
        self.instruments.started.pop(worker_ctx, None)
