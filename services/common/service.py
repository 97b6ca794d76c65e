"""What every Drive service has: structured log context per worker, metrics, `/health` (and its liveness and
readiness probes), `/metrics` and `/openapi.json`."""

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from kombu import Connection
from marshmallow import ValidationError
from nameko.extensions import DependencyProvider
from nameko.timer import Timer
from werkzeug.wrappers import Response

from services.common.database import Database
from services.common.deployment import DeploymentGuard
from services.common.errors import DriveError
from services.common.http import Route, json_response, public
from services.common.logs import bind_worker_context, clear_worker_context
from services.common.metrics import CONTENT_TYPE, ServiceMetrics
from services.common.openapi import build_openapi
from services.common.relay import OutboxRelay
from services.common.settings import amqp_uri

log = logging.getLogger("drive.worker")
T = TypeVar("T")


class WorkerLogContext(DependencyProvider):
    """Every log line of a worker carries its event id, event type and reservation id; each worker ends with
    one line saying what ran, how long it took and how it ended."""

    def setup(self) -> None:
        self.started: WeakKeyDictionary = WeakKeyDictionary()

    def worker_setup(self, worker_ctx: Any) -> None:
        bind_worker_context(worker_ctx)
        self.started[worker_ctx] = time.monotonic()

    def worker_result(self, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> None:
        elapsed_ms = round((time.monotonic() - self.started.pop(worker_ctx, time.monotonic())) * 1000, 1)
        if exc_info is None:
            # Timers tick all day long: their routine runs are for debugging, requests and events for the record.
            level = logging.DEBUG if isinstance(worker_ctx.entrypoint, Timer) else logging.INFO
            log.log(level, "worker done", extra={"duration_ms": elapsed_ms})
        elif isinstance(exc_info[1], DriveError | ValidationError):
            log.info("worker refused", extra={"duration_ms": elapsed_ms, "error": str(exc_info[1])})
        else:
            log.warning("worker failed", extra={"duration_ms": elapsed_ms, "error": repr(exc_info[1])})

    def worker_teardown(self, worker_ctx: Any) -> None:
        clear_worker_context()


class ServiceProbe(DependencyProvider):
    """Health of what the service depends on: its database and its outbox when it has them (the web service has
    neither: it keeps no state of its own), the broker always."""

    def setup(self) -> None:
        self.database = next((d for d in self.container.dependencies if isinstance(d, Database)), None)
        self.relay = next((d for d in self.container.dependencies if isinstance(d, OutboxRelay)), None)
        self.routes = lambda: [e for e in self.container.entrypoints if isinstance(e, Route) and e.documented]

    def get_dependency(self, worker_ctx: Any) -> "ServiceProbe":
        return self

    def check(self) -> tuple[bool, dict[str, Any]]:
        """The full report (`/health`, read by `drive check`): readiness and the outbox."""
        healthy, checks = self.ready()
        if self.relay is not None and checks.get("database") == "ok":
            checks["outbox_stuck"] = self.relay.publisher.pending(older_than_seconds=60)
        return healthy, checks

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready for traffic: the database (if any) and the broker answer."""
        checks: dict[str, Any] = {}
        if self.database is not None:
            try:
                self.database.ping()
                checks["database"] = "ok"
            except Exception as exc:  # health reports, never raises
                checks["database"] = f"unreachable: {exc.__class__.__name__}"
        try:
            with Connection(amqp_uri(self.container.config), connect_timeout=3) as conn:
                conn.ensure_connection(max_retries=1)
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"unreachable: {exc.__class__.__name__}"
        return all(value == "ok" for value in checks.values()), checks

    def openapi(self) -> dict[str, Any]:
        return build_openapi(f"Drive {self.container.service_name}", self.routes(),
                             path_ids=getattr(self.container.service_cls, "path_ids", None))


class Configured(DependencyProvider, Generic[T]):
    """A service's policy, built once from its configuration when the container sets up (bad values stop the
    start), and the same object for every worker: `policy = Configured(Policy)`."""

    def __init__(self, build: Callable[[Mapping[str, Any]], T]) -> None:
        self.build = build

    def setup(self) -> None:
        self.value = self.build(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> T:
        return self.value


class DriveService:
    """Base of the service classes: subclasses set `name`, `db`, `outbox`, and `path_ids` (the fields that check
    their routes' path ids, by name). `db` and `outbox` are optional: a service without state of its own (web)
    sets neither, and its health checks the broker alone."""

    name: str

    deployment = DeploymentGuard()  # outside DRIVE_ENV=dev, refuses the dev secret and default passwords
    log_context = WorkerLogContext()
    probe = ServiceProbe()
    metrics = ServiceMetrics()

    @public("GET", "/health", summary="200 when the database and the broker answer, 503 otherwise; the full report "
            "(the outbox too) that `drive check` reads")
    def health(self, request: Any) -> Any:
        return self._health(*self.probe.check())

    @public("GET", "/health/live", summary="Liveness: 200 while the process serves (no dependency is checked)")
    def health_live(self, request: Any) -> Any:
        return json_response({"status": "ok", "service": self.name})

    @public("GET", "/health/ready", summary="Readiness: 200 when the database and the broker answer, 503 naming "
            "the failing check otherwise")
    def health_ready(self, request: Any) -> Any:
        return self._health(*self.probe.ready())

    def _health(self, healthy: bool, checks: dict[str, Any]) -> Any:
        return json_response({"status": "ok" if healthy else "unavailable", "service": self.name,
                              "checks": checks}, 200 if healthy else 503)

    @public("GET", "/metrics", summary="Prometheus metrics (text format): requests, events, outbox, dead letters, "
            "timers", produces="text/plain")
    def prometheus_metrics(self, request: Any) -> Any:
        return Response(self.metrics.render(), mimetype=None, content_type=CONTENT_TYPE)

    @public("GET", "/openapi.json", summary="this document")
    def openapi(self, request: Any) -> Any:
        return json_response(self.probe.openapi())
