"""Structured JSON logs: one object a line, with the worker's event id and reservation id bound."""

import logging
from typing import Any

import structlog

from services.common.envelope import Event


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """For the `LOGGING` section of a service's config (nameko applies it with dictConfig)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
        )


def configure(level: str = "INFO") -> None:
    """JSON logs for processes nameko does not configure (the CLI, benchmarks)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def bind_worker_context(worker_ctx: Any) -> None:
    structlog.contextvars.clear_contextvars()
    context: dict[str, Any] = {"entrypoint": worker_ctx.entrypoint.method_name}
    for arg in worker_ctx.args:
        if isinstance(arg, list) and len(arg) == 1:  # a batch of one (`batch_event_handler`): as one event
            arg = arg[0]
        if isinstance(arg, Event):
            context.update(event_id=arg.id, event_type=arg.type,
                           reservation_id=arg.data.get("reservation_id"))
        elif isinstance(arg, list) and arg and isinstance(arg[0], Event):  # a batch: which events it held
            context.update(event_type=arg[0].type, batch_size=len(arg), event_ids=[e.id for e in arg])
    if "reservation_id" in worker_ctx.kwargs:
        context["reservation_id"] = worker_ctx.kwargs["reservation_id"]
    structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items() if v is not None})


def clear_worker_context() -> None:
    structlog.contextvars.clear_contextvars()
