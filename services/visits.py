"""The visit contract, beside the event catalogue (`services.events`): which visits a bibliobus stop gets,
as aware datetimes, read from the schedule `stop_registered` carries.

A slot is a weekday with local arrival and departure times (`{"weekday": "tuesday", "arrives": "09:30",
"departs": "10:15"}`); a stop may have several a week. Bibliobus checks and shows schedules with these
functions and reservations books visits with them: one implementation of the contract, owned by neither
service (no service imports another). Plain functions: no nameko, no session.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.events import WEEKDAYS


@dataclass(frozen=True, order=True)
class Visit:
    arrives_at: datetime
    departs_at: datetime

    def as_ref(self, stop_id: str) -> dict:
        return {"stop_id": stop_id, "arrives_at": self.arrives_at, "departs_at": self.departs_at}


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def slot_problems(slots: Iterable[Mapping[str, str]]) -> list[str]:
    """What is wrong with a schedule, in words staff understand (empty: it is fine)."""
    problems = []
    slots = list(slots)
    if not slots:
        problems.append("a stop needs at least one visit a week")
    for n, slot in enumerate(slots):
        if _clock(slot["departs"]) <= _clock(slot["arrives"]):
            problems.append(f"visit {n + 1}: the vehicle must leave after it arrives")
    return problems


def visits_on(day: date, slots: Iterable[Mapping[str, str]], zone: ZoneInfo) -> list[Visit]:
    weekday = WEEKDAYS[day.weekday()]
    return sorted(
        Visit(datetime.combine(day, _clock(s["arrives"]), zone).astimezone(UTC),
              datetime.combine(day, _clock(s["departs"]), zone).astimezone(UTC))
        for s in slots if s["weekday"] == weekday)


def upcoming_visits(slots: Iterable[Mapping[str, str]], after: datetime, timezone: str,
                    weeks: int = 8) -> Iterator[Visit]:
    """Visits whose vehicle has not yet arrived at `after`, in order, over the next `weeks` weeks.
    A visit under way no longer counts: its load left the central library already."""
    zone = ZoneInfo(timezone)
    slots = list(slots)
    first = after.astimezone(zone).date()
    for offset in range(weeks * 7 + 1):
        for visit in visits_on(first + timedelta(days=offset), slots, zone):
            if visit.arrives_at > after:
                yield visit


def next_visit(slots: Iterable[Mapping[str, str]], after: datetime, timezone: str) -> Visit | None:
    return next(upcoming_visits(slots, after, timezone), None)
