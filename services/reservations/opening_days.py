"""When a pickup point opens — the one model of opening days, `Calendar`: opening hours per weekday (several
ranges a day), closed days (French public holidays from the `holidays` package, and days closed by staff),
the deadlines and due dates that fall on opening days, and the appointment slots cut from the opening hours.
Plain values in, plain values out: no session, no nameko."""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from services.common.errors import Invalid

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Ranges = tuple[tuple[time, time], ...]
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@lru_cache(maxsize=32)
def public_holidays(year: int) -> Mapping[date, str]:
    """France's public holidays of a year, by name in French (the package keeps them up to date)."""
    return holidays.France(years=year, language="fr")


def _clock(hours: str, minutes: str, where: str) -> time:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return time.max
    if not (0 <= h < 24 and 0 <= m < 60):
        raise Invalid(f"{hours}:{minutes} is not a time of day", field=where)
    return time(h, m)


def parse_ranges(texts: Iterable[str], where: str = "opening_hours") -> Ranges:
    """`["10:00-12:30", "14:00-18:00"]` → ordered, non-overlapping ranges (else 400 naming the weekday)."""
    ranges = []
    for text in texts:
        match = _RANGE.match(text or "")
        if not match:
            raise Invalid(f"{text!r} is not a range like 10:00-12:30", field=where)
        opens, closes = _clock(*match.group(1, 2), where), _clock(*match.group(3, 4), where)
        if closes <= opens:
            raise Invalid(f"{text!r} closes before it opens", field=where)
        ranges.append((opens, closes))
    ranges.sort()
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        if start < end:
            raise Invalid("opening ranges overlap", field=where)
    return tuple(ranges)


def parse_week(week: Mapping[str, Sequence[str]]) -> dict[int, Ranges]:
    """{"tuesday": ["10:00-12:30", "14:00-18:00"], …} → {2: ranges, …} (isoweekday; a day left out is closed)."""
    parsed = {}
    for name, texts in week.items():
        if name not in WEEKDAYS:
            raise Invalid(f"{name!r} is not a weekday ({', '.join(WEEKDAYS)})", field="opening_hours")
        ranges = parse_ranges(texts, where=f"opening_hours.{name}")
        if ranges:
            parsed[WEEKDAYS.index(name) + 1] = ranges
    return parsed


def format_week(hours: Mapping[int, Ranges]) -> dict[str, list[str]]:
    def hhmm(t: time) -> str:
        return "24:00" if t == time.max else t.strftime("%H:%M")
    return {WEEKDAYS[day - 1]: [f"{hhmm(a)}-{hhmm(b)}" for a, b in ranges] for day, ranges in sorted(hours.items())}


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Calendar:
    hours: Mapping[int, Ranges]
    closed_days: Mapping[date, str] = field(default_factory=dict)  # days closed by staff, with their reason
    zone: str = "Europe/Paris"
    slot_minutes: int = 15

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def closed_because(self, day: date) -> str | None:
        """Why the drive is closed that day (a holiday's name, the staff's reason), or None when it opens."""
        if day in self.closed_days:
            return self.closed_days[day]
        holiday = public_holidays(day.year).get(day)
        if holiday:
            return holiday
        if not self.hours.get(day.isoweekday()):
            return "fermé ce jour de la semaine"
        return None

    def is_open(self, day: date) -> bool:
        return self.closed_because(day) is None

    def next_opening_day(self, day: date, horizon_days: int = 366) -> date:
        """The day itself if the drive opens then, else the first opening day after it."""
        for n in range(horizon_days):
            if self.is_open(day + timedelta(days=n)):
                return day + timedelta(days=n)
        raise Invalid("the drive does not open in the coming year: check its opening hours", field="opening_hours")

    def opening_days_after(self, day: date, count: int) -> list[date]:
        """The first `count` opening days after `day`."""
        found = []
        while len(found) < count:
            day = self.next_opening_day(day + timedelta(days=1))
            found.append(day)
        return found

    def closing_on_or_after(self, day: date) -> datetime:
        """The closing time of that day, or of the next opening day if the drive is closed then."""
        return self.closing_time(self.next_opening_day(day))

    def closing_time(self, day: date) -> datetime:
        closes = self.hours[day.isoweekday()][-1][1]
        if closes == time.max:
            return datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)
        return datetime.combine(day, closes, tzinfo=self.tz)

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def after_days(self, moment: datetime, days: int) -> datetime:
        """A deadline `days` after `moment`: closing time of that day, or of the next opening day if the drive
        is closed then (a pickup deadline or a due date never falls on a closed day)."""
        return self.closing_on_or_after(self.local_day(moment) + timedelta(days=days))

    def deadline_day(self, deadline: datetime) -> date:
        """The day a deadline ends: a drive open until 24:00 ends its day at the next midnight."""
        return self.local_day(deadline - timedelta(microseconds=1))

    def still_due(self, deadline: datetime) -> datetime:
        """A deadline set earlier, read against the days staff have closed since: one on a day now closed
        moves to the closing time of the next opening day. (Weekly hours and public holidays were known when it
        was set, so it never falls on them: that is not checked again.)"""
        day = self.deadline_day(deadline)
        return self.closing_on_or_after(day) if day in self.closed_days else deadline

    def slots(self, first: date, last: date) -> list[Slot]:
        """Every slot of the opening days from `first` to `last` (both included); a slot ends inside its range."""
        found, step = [], timedelta(minutes=self.slot_minutes)
        day = first
        while day <= last:
            if self.is_open(day):
                for opens, closes in self.hours[day.isoweekday()]:
                    start = datetime.combine(day, opens, tzinfo=self.tz)
                    end = (datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)
                           if closes == time.max else datetime.combine(day, closes, tzinfo=self.tz))
                    while start + step <= end:
                        found.append(Slot(start, start + step))
                        start += step
            day += timedelta(days=1)
        return found

    def slot_at(self, starts_at: datetime) -> Slot:
        """The slot starting at that moment, or 400 saying why there is none."""
        day = self.local_day(starts_at)
        reason = self.closed_because(day)
        if reason:
            raise Invalid(f"the drive is closed on {day.isoformat()} ({reason})", field="starts_at")
        for slot in self.slots(day, day):
            if slot.starts_at == starts_at:
                return slot
        raise Invalid(f"no slot starts at {starts_at.astimezone(self.tz):%H:%M} on {day.isoformat()}: slots are "
                      f"{self.slot_minutes} min within the opening hours", field="starts_at")


def check_range(first: date, last: date, max_days: int = 62) -> None:
    if last < first:
        raise Invalid("`to` is before `from`", field="to")
    if (last - first).days >= max_days:
        raise Invalid(f"ask for at most {max_days} days at a time", field="to")


def deadlines_on(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The moments a deadline ending on `day` can take (see `Calendar.deadline_day`): after the midnight that
    starts the day, up to and including the one that ends it."""
    return (datetime.combine(day, time(0), tzinfo=tz),
            datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz))
