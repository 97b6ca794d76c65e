"""Continuity of lending through a closure (as in lockdown): suspended reminders and fines, and due dates
moved off the closure so that returns do not all land on reopening day — onto opening days as each pickup
point's `Calendar` has them (its hours, public holidays, its closed days). Plain functions on plain values."""

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from services.common.errors import Invalid
from services.reservations.opening_days import Calendar


@dataclass(frozen=True)
class Suspension:
    starts_at: datetime
    ends_at: datetime

    def covers(self, moment: datetime) -> bool:
        return self.starts_at <= moment < self.ends_at

    def days(self) -> set[date]:
        """Calendar days touched by the suspension (a fine is per day: a day partly suspended is not fined)."""
        first, last = self.starts_at.date(), (self.ends_at - timedelta(microseconds=1)).date()
        return {first + timedelta(days=n) for n in range((last - first).days + 1)}


def check_period(starts_at: datetime, ends_at: datetime, field: str = "until", what: str = "suspension") -> None:
    if ends_at <= starts_at:
        raise Invalid(f"the {what} must end after it starts", field=field)


def overdue_days(due_at: datetime, until: datetime, suspensions: Iterable[Suspension] = (),
                 grace_days: int = 0) -> int:
    """Whole days past the due date that count: not those inside a suspension, nor the grace days right after
    one ends (patrons get time to bring documents back before reminders and fines start again)."""
    excused: set[date] = set()
    for suspension in suspensions:
        excused |= suspension.days()
        last = (suspension.ends_at - timedelta(microseconds=1)).date()
        excused |= {last + timedelta(days=n) for n in range(1, grace_days + 1)}
    first = due_at.date() + timedelta(days=1)
    return sum(1 for n in range((until.date() - due_at.date()).days)
               if first + timedelta(days=n) not in excused)


@dataclass(frozen=True)
class DueItem:
    key: str  # a loan id or a reservation id
    patron: str
    due_at: datetime
    point: str | None = None  # the pickup point it is returned to or collected at


def shift_due_dates(items: Sequence[DueItem], closed_from: datetime, closed_until: datetime, rule: str,
                    network: Calendar, fixed: date | None = None, spread_days: int = 1,
                    calendar_of: Callable[[str], Calendar] | None = None) -> dict[str, datetime]:
    """New due dates for the items due inside the closure: all on a fixed date, or spread over the first N
    opening days of the network (`network`) after reopening — one patron's items on the same day, so they
    come once and get one message. Each date is the closing time of its point on that day, or on the point's
    next opening day if it is closed then (`calendar_of`: a point's calendar; without it, the network's)."""
    check_period(closed_from, closed_until, field="closed_until", what="closure")
    inside = [item for item in items if closed_from <= item.due_at < closed_until]
    if rule == "fixed":
        if fixed is None or fixed < closed_until.date():
            raise Invalid("a fixed date after the closure is needed", field="date")
        return {item.key: _closing(item, fixed, network, calendar_of) for item in inside}
    if rule != "spread":
        raise Invalid("rule is fixed or spread", field="rule")
    if spread_days < 1:
        raise Invalid("spread over at least one opening day", field="opening_days")
    days = network.opening_days_after(closed_until.date() - timedelta(days=1), spread_days)
    per_patron = Counter(item.patron for item in inside)
    load = dict.fromkeys(days, 0)
    day_of = {}
    for patron, count in sorted(per_patron.items(), key=lambda pc: (-pc[1], pc[0])):
        day = min(days, key=lambda d: (load[d], d))  # the least busy day so far takes the next patron
        day_of[patron], load[day] = day, load[day] + count
    return {item.key: _closing(item, day_of[item.patron], network, calendar_of) for item in inside}


def _closing(item: DueItem, day: date, network: Calendar, calendar_of: Callable[[str], Calendar] | None) -> datetime:
    calendar = calendar_of(item.point) if calendar_of and item.point else network
    return calendar.closing_on_or_after(day)
