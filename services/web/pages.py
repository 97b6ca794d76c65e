"""The pages: rendered on the server (jinja2, autoescaped), served with the headers that keep them to their own
origin, and the view of a day sheet or a reservation the templates show."""

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.wrappers import Response

from services.common.http import Route
from services.web import words

HERE = Path(__file__).resolve().parent
# No inline script or style anywhere: what runs and what styles comes from /static, and nothing from elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer",
                    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                        trim_blocks=True, lstrip_blocks=True)


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


class PageRoute(Route):
    """A route of the pages: no bearer token (the session cookie says who is there), every answer with the
    security headers, and left out of the OpenAPI document (it documents the JSON API)."""

    documented = False

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        super().__init__(method, url, roles=None, **kwargs)

    def response_from_result(self, result: Any) -> Response:
        return secure(super().response_from_result(result))

    def response_from_exception(self, exc: Exception) -> Response:
        return secure(super().response_from_exception(exc))


page = PageRoute.decorator


def html(template: str, status: int = 200, **context: Any) -> Response:
    lang = context.setdefault("lang", words.DEFAULT)
    context.setdefault("say", lambda key, **values: words.say(lang, key, **values))
    context.setdefault("status_word", lambda status: words.status_word(lang, status))
    return Response(templates.get_template(template).render(**context), status=status,
                    mimetype="text/html")


def static_file(name: str) -> Response | None:
    if name not in STATIC:
        return None
    response = Response((HERE / "static" / name).read_bytes(), content_type=STATIC[name])
    response.headers["Cache-Control"] = "no-cache"
    return response


def local_time(value: str | None, zone: ZoneInfo) -> str:
    """An API moment (ISO 8601) as the counter's clock reads it: HH:MM, local."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(zone).strftime("%H:%M")


def local_moment(value: str | None, zone: ZoneInfo) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(zone).strftime("%d/%m/%Y %H:%M")


def today(zone: ZoneInfo) -> date:
    return datetime.now(zone).date()


def sheet_view(sheet: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """The day sheet as the board shows it: times local, the slots that have someone first among the empty."""
    def entry(e: Mapping[str, Any]) -> dict[str, Any]:
        return {**e, "arrived_time": local_time(e.get("arrived_at"), zone)}

    slots = [{"starts": local_time(s["starts_at"], zone), "ends": local_time(s["ends_at"], zone),
              "capacity": s["capacity"], "entries": [entry(e) for e in s["reservations"]]} for s in sheet["slots"]]
    return {"point": sheet["pickup_point"], "day": sheet["day"], "open": sheet["open"],
            "closed_because": sheet.get("closed_because"), "slots": slots,
            "walk_ins": [entry(e) for e in sheet["without_appointment"]],
            "early": [entry(e) for e in sheet["arrived_before_ready"]],
            "outside": [entry(e) for e in sheet["waiting_outside"]]}
