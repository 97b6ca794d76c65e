"""HTTP routes: token and role checked, body and query validated, errors mapped to JSON — once, here.

    @route("POST", "/reservations", roles=("patron", "staff"), body=PlaceSchema, response=ReservationSchema,
           status=201)
    def place(self, request, principal, body): ...

A route whose path names a `card` lets a patron through only for their own card.
"""

import json
import logging
from typing import Any

from marshmallow import Schema, ValidationError
from nameko.web.handlers import HttpRequestHandler
from werkzeug.wrappers import Response

from services.common.auth import TokenVerifier
from services.common.errors import DriveError, Invalid

log = logging.getLogger(__name__)


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False, default=str), status=status,
                    mimetype="application/json")


def error_response(status: int, code: str, message: str, **details: Any) -> Response:
    body = {"error": code, "message": message}
    body.update({k: v for k, v in details.items() if v is not None})
    return json_response(body, status)


def _schema(schema: type[Schema] | Schema | None) -> Schema | None:
    return schema() if isinstance(schema, type) else schema


class Route(HttpRequestHandler):
    def __init__(self, method: str, url: str, *, roles: tuple[str, ...] | None, body: Any = None,
                 query: Any = None, response: Any = None, status: int = 200, summary: str = "",
                 raw_body: str | None = None, optional_body: bool = False, **kwargs: Any) -> None:
        # Refusals (4xx) are expected: nameko then logs them as warnings, not as errors with a traceback.
        kwargs.setdefault("expected_exceptions", (DriveError, ValidationError))
        super().__init__(method, url, **kwargs)
        self.roles = roles
        self.body_schema = _schema(body)
        self.query_schema = _schema(query)
        self.response_schema = _schema(response)
        self.status = status
        self.summary = summary
        self.raw_body = raw_body  # a media type such as "text/csv": the method reads the body itself
        self.optional_body = optional_body  # no body at all reads as {} (every field then has its default)

    def setup(self) -> None:
        super().setup()
        self.verifier = TokenVerifier(self.container.config)
        # Path ids checked like any field (a card longer than its column is a 400, not a database error).
        self.path_schema = Schema.from_dict(getattr(self.container.service_cls, "path_ids", {}))()

    def get_entrypoint_parameters(self, request: Any) -> tuple[tuple, dict]:
        args, kwargs = super().get_entrypoint_parameters(request)
        kwargs = dict(kwargs)
        if self.roles is not None:
            principal = self.verifier.authorize(request.headers.get("Authorization"), self.roles)
            if "card" in kwargs:
                principal.require_card(kwargs["card"])
            kwargs["principal"] = principal
        known = {name: kwargs[name] for name in self.path_schema.fields if name in kwargs}
        if known:
            self.path_schema.load(known, partial=True)
        if self.body_schema is not None:
            empty = self.optional_body and not request.get_data(as_text=True).strip()
            kwargs["body"] = self.body_schema.load({} if empty else self._json(request))
        if self.query_schema is not None:
            kwargs["query"] = self.query_schema.load(request.args.to_dict())
        return args, kwargs

    @staticmethod
    def _json(request: Any) -> Any:
        raw = request.get_data(as_text=True)
        if not raw.strip():
            raise Invalid("the request needs a JSON body")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise Invalid(f"malformed JSON: {exc}") from exc

    def response_from_result(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        status = self.status
        if isinstance(result, tuple):
            status, result = result
        if self.response_schema is not None:
            result = self.response_schema.dump(result)
        return json_response(result, status)

    def response_from_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DriveError):
            return error_response(exc.status, exc.code, exc.message, details=exc.details or None)
        if isinstance(exc, ValidationError):
            return error_response(400, "invalid", "the request does not fit the expected shape",
                                  fields=exc.messages)
        log.exception("unhandled error in %s %s", self.method, self.url, exc_info=exc)
        return error_response(500, "internal", "internal error; the operation was not applied")


route = Route.decorator


def public(method: str, url: str, **kwargs: Any) -> Any:
    return Route.decorator(method, url, roles=None, **kwargs)
