"""Structured JSON logs: one object a line, naming its service, with the worker's correlation id, event id and
reservation id bound.

Whatever else writes to stderr is turned into log lines too: warnings (`logging.captureWarnings`), tracebacks
of green threads that eventlet's hub would print raw, and uncaught exceptions. A traceback is a field of its
line (`exception`), never lines of its own.
"""

import logging
import sys
import threading
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any

import structlog

from services.common import correlation
from services.common.envelope import Event

SERVICE_FIELD = "service"
_service_name = "drive"  # what the process is: set by the formatter of its logging configuration


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """For the `LOGGING` section of a service's config (nameko applies it with dictConfig):

        formatters: {json: {(): services.common.logs.JsonFormatter, service: reservations}}
    """

    def __init__(self, *args: Any, service: str | None = None, **kwargs: Any) -> None:
        global _service_name
        if service:
            _service_name = service
        super().__init__(
            processor=structlog.processors.JSONRenderer(default=str),
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                _add_service,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.StackInfoRenderer(),
                structlog.processors.format_exc_info,
            ],
        )
        route_raw_output()

    def format(self, record: logging.LogRecord) -> str:
        # One line whatever the message holds: the JSON renderer escapes newlines; nothing is appended after it.
        line = super().format(record)
        return line.replace("\n", "\\n")


def _add_service(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict.setdefault(SERVICE_FIELD, _service_name)
    return event_dict


def route_raw_output() -> None:
    """Send to the log what would otherwise reach stderr raw (idempotent)."""
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)
    try:
        from eventlet.hubs import hub
    except ImportError:  # a tool without eventlet
        return
    # The hub prints tracebacks of failed timers and green threads itself (traceback.print_exception).
    hub.BaseHub.squelch_generic_exception = _squelch_generic
    hub.BaseHub.squelch_timer_exception = _squelch_timer


_hub_log = logging.getLogger("eventlet.hub")


def _squelch_generic(self: Any, exc_info: Any) -> None:
    if self.debug_exceptions:
        _hub_log.error("unhandled error in a green thread", exc_info=exc_info)


def _squelch_timer(self: Any, timer: Any, exc_info: Any) -> None:
    if self.debug_exceptions:
        _hub_log.error("unhandled error in a green thread", exc_info=exc_info)


def _log_uncaught(exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None) -> None:
    if exc is None or isinstance(exc, KeyboardInterrupt):
        return
    logging.getLogger("drive").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def configure(level: str = "INFO", service: str = "drive") -> None:
    """JSON logs for processes nameko does not configure (the CLI, benchmarks)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service=service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def bind_worker_context(worker_ctx: Any) -> None:
    """The worker's log context, and the cause of what it publishes (`services.common.correlation`): the event
    it handles, the HTTP request it answers (its id left in the environ by the WSGI app), else a new chain
    (a timer tick)."""
    structlog.contextvars.clear_contextvars()
    context: dict[str, Any] = {"entrypoint": worker_ctx.entrypoint.method_name}
    cause = None
    for arg in worker_ctx.args:
        if isinstance(arg, list) and len(arg) == 1:  # a batch of one (`batch_event_handler`): as one event
            arg = arg[0]
        if isinstance(arg, Event):
            cause = correlation.cause_of(arg)
            context.update(event_id=arg.id, event_type=arg.type,
                           reservation_id=arg.data.get("reservation_id"))
        elif isinstance(arg, list) and arg and isinstance(arg[0], Event):  # a batch: which events it held
            # Each event's own correlation applies inside `correlation.caused_by(event)`; the batch's lines
            # name them all.
            context.update(event_type=arg[0].type, batch_size=len(arg), event_ids=[e.id for e in arg],
                           correlation_ids=sorted({correlation.cause_of(e).correlation_id for e in arg}))
        elif (environ := getattr(arg, "environ", None)) is not None and correlation.REQUEST_ID_ENVIRON in environ:
            cause = correlation.starting(environ[correlation.REQUEST_ID_ENVIRON])
    if "reservation_id" in worker_ctx.kwargs:
        context["reservation_id"] = worker_ctx.kwargs["reservation_id"]
    structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items() if v is not None})
    correlation.set_cause(cause or correlation.starting())


def clear_worker_context() -> None:
    structlog.contextvars.clear_contextvars()
    correlation.set_cause(None)
