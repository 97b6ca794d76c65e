"""HTTP routes: token and role checked, body and query validated, errors mapped to JSON — once, here.

    @route("POST", "/reservations", roles=("patron", "staff"), body=PlaceSchema, response=ReservationSchema,
           status=201)
    def place(self, request, principal, body): ...

A route whose path names a `card` lets a patron through only for their own card. Before any of that, the edge
(`services.common.edge`) refuses what no route should see; unknown routes and methods answer the same JSON errors.
"""

import json
import logging
import socket
import time
from typing import Any

from marshmallow import Schema, ValidationError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from services.common import correlation, edge, metrics
from services.common.auth import TokenVerifier
from services.common.errors import DriveError, Invalid

log = logging.getLogger(__name__)

LINGER_SECONDS = 2.0  # how long a connection whose body was refused unread still drops what the client sends
LINGER_BYTES = 64 * 1024 * 1024


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False, default=str), status=status,
                    mimetype="application/json")


def error_response(status: int, code: str, message: str, **details: Any) -> Response:
    body = {"error": code, "message": message}
    body.update({k: v for k, v in details.items() if v is not None})
    return json_response(body, status)


class DriveProtocol(HttpOnlyProtocol):
    """eventlet's HTTP protocol, able to close a connection whose body was refused unread (413): the rest of the
    body is never parsed nor kept. After the answer it still drops, for a bounded moment, what a client that
    does not wait for answers keeps sending, so that this client reads the 413 rather than a reset."""

    linger = False

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ["drive.close_connection"] = self._close_after_answer
        return environ

    def _close_after_answer(self) -> None:
        self.close_connection = 1  # set before the answer is written: eventlet then skips reading the body
        self.linger = True

    def finish(self) -> None:
        if self.linger:
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                deadline, dropped = time.monotonic() + LINGER_SECONDS, 0
                while time.monotonic() < deadline and dropped < LINGER_BYTES:
                    self.connection.settimeout(max(deadline - time.monotonic(), 0.01))
                    part = self.connection.recv(64 * 1024)
                    if not part:
                        break
                    dropped += len(part)
            except OSError:  # the client went away, or kept sending past the moment: close anyway
                pass
        super().finish()


class DriveWsgiApp(WsgiApp):
    """nameko's WSGI app, answering unknown routes (404) and methods (405, with Allow) as JSON errors."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # The request's correlation id (services.common.correlation): its worker reads it here, the answer echoes it.
        # Bound here too, for this connection's own lines (refusals before any worker, eventlet's access line).
        request_id = environ[correlation.REQUEST_ID_ENVIRON] = correlation.request_id(environ.get("HTTP_X_REQUEST_ID"))
        correlation.set_cause(correlation.starting(request_id))
        request = Request(environ, shallow=True)
        started, template = time.monotonic(), metrics.UNMATCHED_ROUTE
        try:
            rule, values = self.url_map.bind_to_environ(environ).match(return_rule=True)
            provider, template = rule.endpoint, rule.rule  # counted by template: no ids in the labels
            request.path_values = values  # type: ignore[attr-defined]  # where nameko's handlers read them
            answer = provider.handle_request(request)
        except MethodNotAllowed as exc:
            allowed = sorted(exc.valid_methods or ())
            answer = error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}",
                                    details={"allowed": allowed})
            answer.headers["Allow"] = ", ".join(allowed)
        except NotFound:
            answer = error_response(404, "not_found", f"no route {request.method} {request.path}")
        except HTTPException as exc:  # a redirect (a missing trailing slash) stays as werkzeug says it
            code = exc.code or 500
            answer = exc.get_response(environ) if code < 400 else error_response(code, "bad_request", exc.name)
        answer.headers[correlation.REQUEST_ID_HEADER] = request_id
        metrics.of(self.server.container).request(template, request.method, answer.status_code,
                                                  time.monotonic() - started)
        return answer(environ, start_response)


class DriveWebServer(WebServer):
    def get_wsgi_app(self) -> DriveWsgiApp:
        return DriveWsgiApp(self)

    def get_wsgi_server(self, sock: Any, wsgi_app: Any, protocol: Any = DriveProtocol, debug: bool = False) -> Any:
        return super().get_wsgi_server(sock, wsgi_app, protocol=protocol, debug=debug)


def _schema(schema: type[Schema] | Schema | None) -> Schema | None:
    return schema() if isinstance(schema, type) else schema


class Route(HttpRequestHandler):
    server = DriveWebServer()
    documented = True  # in the service's OpenAPI document (the web service's HTML pages are not)

    def __init__(self, method: str, url: str, *, roles: tuple[str, ...] | None, body: Any = None,
                 query: Any = None, response: Any = None, status: int = 200, summary: str = "",
                 raw_body: str | None = None, optional_body: bool = False, max_body: int = edge.MAX_BODY_BYTES,
                 produces: str = "application/json", **kwargs: Any) -> None:
        # Refusals (4xx) are expected: nameko then logs them as warnings, not as errors with a traceback.
        # A DataError is a value the database cannot hold (too long for its column, out of range): a refusal too.
        kwargs.setdefault("expected_exceptions", (DriveError, ValidationError, DataError))
        super().__init__(method, url, **kwargs)
        self.roles = roles
        self.body_schema = _schema(body)
        self.query_schema = _schema(query)
        self.response_schema = _schema(response)
        self.status = status
        self.summary = summary
        self.raw_body = raw_body  # a media type such as "text/csv": the method reads the body itself
        self.optional_body = optional_body  # no body at all reads as {} (every field then has its default)
        self.max_body = max_body  # bytes; larger bodies are refused (413) unread
        self.produces = produces  # the media type of a success (documented; the method answers in it)

    def setup(self) -> None:
        super().setup()
        self.verifier = TokenVerifier(self.container.config)
        # Path ids checked like any field (a card longer than its column is a 400, not a database error).
        self.path_schema = Schema.from_dict(getattr(self.container.service_cls, "path_ids", {}))()

    def get_entrypoint_parameters(self, request: Any) -> tuple[tuple, dict]:
        data = edge.read_body(request.environ, self.max_body)
        args, kwargs = super().get_entrypoint_parameters(request)
        kwargs = dict(kwargs)
        edge.check_path(request.environ.get("PATH_INFO", ""), kwargs)
        edge.check_query(request.environ.get("QUERY_STRING", ""))
        if self.roles is not None:
            principal = self.verifier.authorize(request.headers.get("Authorization"), self.roles)
            if "card" in kwargs:
                principal.require_card(kwargs["card"])
            kwargs["principal"] = principal
        known = {name: kwargs[name] for name in self.path_schema.fields if name in kwargs}
        if known:
            self.path_schema.load(known, partial=True)
        if self.body_schema is not None:
            kwargs["body"] = self.body_schema.load(self._json(request, data))
        elif self.raw_body is not None:  # the method reads the body itself, known to be text it can store
            edge.require_media_type(request.mimetype, request.mimetype_params, self.raw_body)
            edge.check_text(edge.utf8(data), "(the body)", "body")
        if self.query_schema is not None:
            kwargs["query"] = self.query_schema.load(request.args.to_dict())
        return args, kwargs

    def _json(self, request: Any, data: bytes) -> Any:
        if not data.strip():
            if self.optional_body:
                return {}
            raise Invalid("the request needs a JSON body")
        edge.require_media_type(request.mimetype, request.mimetype_params, "application/json")
        return edge.parse_json(edge.utf8(data))

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
        if isinstance(exc, DataError):
            # What PostgreSQL said, without the statement or its parameters (engines hide them anyway).
            reason = getattr(getattr(exc.orig, "diag", None), "message_primary", None) or "out of range"
            return error_response(400, "invalid", f"a value does not fit what its field can hold: {reason}")
        log.exception("unhandled error in %s %s", self.method, self.url, exc_info=exc)
        return error_response(500, "internal", "internal error; the operation was not applied")


route = Route.decorator


def public(method: str, url: str, **kwargs: Any) -> Any:
    return Route.decorator(method, url, roles=None, **kwargs)
