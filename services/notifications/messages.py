"""What a message says: the facts an event carries, rendered with the templates of the patron's language.
Templates ship in `templates/<language>/<event>.<channel>.j2` (an e-mail's first line is its subject); a folder
named by NOTIFY_TEMPLATES_DIR, laid out the same way, overrides any of them without touching code."""

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from services.notifications.domain import fit_sms

SHIPPED = Path(__file__).resolve().parent / "templates"
LOCALES = {"fr": "fr_FR", "en": "en_GB"}
ANNOUNCED = ("reservation_ready", "items_unavailable", "reservation_expired", "reservation_cancelled",
             "loan_overdue", "due_dates_shifted", "reservation_released_to_allocation")


def facts(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a message about this event needs, taken from the event alone (no call to another service)."""
    if event_type == "due_dates_shifted":
        dates = [loan["due_at"] for loan in data["loans"]] + [r["pickup_deadline"] for r in data["reservations"]]
        return {"titles": [loan.get("title") or loan["loan_id"] for loan in data["loans"]],
                "due_at": min(dates) if dates else None, "waiting": len(data["reservations"]),
                "undone": data["undone"]}
    if event_type == "loan_overdue":
        return {"titles": [data.get("title") or data["barcode"]], "due_at": data["due_at"],
                "days_overdue": data["days_overdue"]}
    lines = data.get("lines", [])
    return {"titles": [line.get("title") or line["title_id"] for line in lines],
            "pickup_point": (data.get("pickup_point") or {}).get("name", ""),
            "deadline": data.get("pickup_deadline"), "visit": (data.get("visit") or {}).get("arrives_at")}


def should_announce(event_type: str, data: Mapping[str, Any]) -> bool:
    """A patron is told of a cancellation only when staff made it: they know of their own."""
    if event_type == "reservation_cancelled":
        return data.get("cancelled_by") == "staff"
    return event_type in ANNOUNCED


class Templates:
    def __init__(self, override_dir: str | None = None, zone: str = "Europe/Paris") -> None:
        loaders = [FileSystemLoader(override_dir)] if override_dir else []
        self.env = Environment(loader=ChoiceLoader([*loaders, FileSystemLoader(str(SHIPPED))]),
                               undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
        self.zone = ZoneInfo(zone)
        self.env.filters["when"] = self._when
        self.env.filters["day"] = self._day

    def _moment(self, value: Any) -> datetime:
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    def _when(self, value: Any, language: str) -> str:
        pattern = "EEEE d MMMM 'à' HH:mm" if language == "fr" else "EEEE d MMMM 'at' HH:mm"
        return format_datetime(self._moment(value), pattern, tzinfo=self.zone, locale=LOCALES[language])

    def _day(self, value: Any, language: str) -> str:
        local = self._moment(value).astimezone(self.zone)
        return format_date(local, "d MMMM" if language == "fr" else "d MMMM", locale=LOCALES[language])

    def render(self, event_type: str, channel: str, language: str, known: Mapping[str, Any]) -> tuple[str | None, str]:
        """(subject, body) for an e-mail; (None, text within two SMS) for an SMS."""
        language = language if language in LOCALES else "fr"
        template = self.env.get_template(f"{language}/{event_type}.{channel}.j2")
        if channel == "sms":
            text = fit_sms(lambda titles, more: template.render({**known, "titles": titles, "more": more,
                                                                  "language": language}).strip(),
                           known.get("titles", []))
            return None, text
        subject, _, body = template.render({**known, "more": 0, "language": language}).partition("\n")
        return subject.strip(), body.lstrip("\n")
