"""What a message says: the facts an event carries, rendered with the templates of the patron's language.
Templates ship in `templates/<language>/<event>.<channel>.j2` (an e-mail's first line is its subject); a folder
named by NOTIFY_TEMPLATES_DIR, laid out the same way, overrides any of them without touching code."""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from services.common.auth import reservation_link_token
from services.common.settings import COMMON
from services.notifications.domain import fit_sms, gsm_friendly

SHIPPED = Path(__file__).resolve().parent / "templates"
LOCALES = {"fr": "fr_FR", "en": "en_GB"}
# babel patterns: French writes a time of day "10 h 15"
MOMENT = {"fr": "EEEE d MMMM 'à' H 'h' mm", "en": "EEEE d MMMM 'at' HH:mm"}
CLOCK = {"fr": "H 'h' mm", "en": "HH:mm"}
PATRON_APP_URL = COMMON.default("WEB_URL")  # the patron's page is the web service's (`/r`)
# The link outlives the deadline the message states by this much: reservations judges the current deadline and
# state at each use, and a closure may have moved the deadline later since the message went.
LINK_GRACE = timedelta(days=7)
PASSED_ON = ("reservation_id", "documents", "outcome", "starts_at", "ends_at", "moved_from", "reason")


def facts(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a message about this event needs, taken from the event alone (no call to another service)."""
    if event_type == "due_dates_shifted":
        # Loans and ready reservations apart: a patron with only a reservation in the shift is told its pickup
        # deadline, not "documents to return" with an empty list.
        due = [loan["due_at"] for loan in data["loans"]]
        deadlines = [r["pickup_deadline"] for r in data["reservations"]]
        return {"titles": [loan.get("title") or loan["loan_id"] for loan in data["loans"]],
                "due_at": min(due) if due else None, "deadline": min(deadlines) if deadlines else None,
                "waiting": len(deadlines), "undone": data["undone"]}
    if event_type == "loan_overdue":
        return {"titles": [data.get("title") or data["barcode"]], "due_at": data["due_at"],
                "days_overdue": data["days_overdue"]}
    lines = data.get("lines", [])
    return {"titles": [line.get("title") or line["title_id"] for line in lines],
            "pickup_point": (data.get("pickup_point") or {}).get("name", ""),
            "deadline": data.get("pickup_deadline"), "visit": (data.get("visit") or {}).get("arrives_at"),
            **{key: data.get(key) for key in PASSED_ON}}


# babel parses its pattern and looks its locale up at each call, which costs more than the rest of a message;
# a morning's messages share a few deadlines and slots, so each moment is formatted once per language.
@lru_cache(maxsize=4096)
def _formatted(moment: datetime, pattern: str, zone: ZoneInfo, locale: str) -> str:
    return format_datetime(moment, pattern, tzinfo=zone, locale=locale)


@lru_cache(maxsize=4096)
def _day(moment: datetime, zone: ZoneInfo, locale: str) -> str:
    return format_date(moment.astimezone(zone), "d MMMM", locale=locale)


class Templates:
    def __init__(self, override_dir: str | None = None, zone: str = "Europe/Paris",
                 patron_app_url: str = PATRON_APP_URL,
                 link_token: Callable[[str, datetime], str] = partial(reservation_link_token, None)) -> None:
        loaders = [FileSystemLoader(override_dir)] if override_dir else []
        self.env = Environment(loader=ChoiceLoader([*loaders, FileSystemLoader(str(SHIPPED))]),
                               undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
        self.zone = ZoneInfo(zone)
        self.app_url = patron_app_url.rstrip("/")
        self.link_token = link_token
        self.env.filters["when"] = self._when
        self.env.filters["clock"] = self._clock
        self.env.filters["day"] = self._day
        self.env.filters["arrival_link"] = self._arrival_link

    def _moment(self, value: Any) -> datetime:
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    def _when(self, value: Any, language: str) -> str:
        return _formatted(self._moment(value), MOMENT[language], self.zone, LOCALES[language])

    def _clock(self, value: Any, language: str) -> str:
        return _formatted(self._moment(value), CLOCK[language], self.zone, LOCALES[language])

    @pass_context
    def _arrival_link(self, context: Context, reservation_id: str) -> str:
        """The patron's page of this reservation (where, until when, the slot, "I'm here"), opened without a login:
        the signed token in the fragment, which browsers never send to a server, so no log ever holds it."""
        deadline = context.get("deadline")
        until = (self._moment(deadline) if deadline else datetime.now(UTC)) + LINK_GRACE
        return f"{self.app_url}/r#{self.link_token(reservation_id, until)}"

    def _day(self, value: Any, language: str) -> str:
        return _day(self._moment(value), self.zone, LOCALES[language])

    def render(self, event_type: str, channel: str, language: str, known: Mapping[str, Any]) -> tuple[str | None, str]:
        """(subject, body) for an e-mail; (None, text within two SMS) for an SMS."""
        language = language if language in LOCALES else "fr"
        template = self.env.get_template(f"{language}/{event_type}.{channel}.j2")
        if channel == "sms":
            def text(full: bool) -> Callable[[list[str], int], str]:
                """`full` false: the template leaves out its optional parts (`{% if full %}`)."""
                return lambda titles, more: gsm_friendly(template.render({
                    **known, "titles": titles, "more": more, "language": language, "full": full}).strip())
            return None, fit_sms(text(True), known.get("titles", []), fallback=text(False))
        subject, _, body = template.render({**known, "more": 0, "language": language, "full": True}).partition("\n")
        return subject.strip(), body.lstrip("\n")
