"""Replays of recorded demand: each stop's demand day by day, and what the rule would have done with other
thresholds. Plain functions on plain values (the bench replays 90 days of 100,000 signals with them).

The replay evaluates once a day, at the end of the day (local time), so `consecutive` counts days there;
it starts with every stop closed and under the rule (no override), and knows no pending reservation."""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.bibliobus.domain import Signal, StopState, Thresholds, evaluate
from services.common.errors import Invalid


def check_period(first: date, last: date, today: date, longest: int = 366) -> tuple[date, date]:
    """The period a what-if replays: in the past, in order, at most `longest` days; refused naming the field."""
    if last < first:
        raise Invalid("the period ends before it starts", field="last")
    if last > today:
        raise Invalid("a what-if replays the past: the period cannot end after today", field="last")
    if (last - first).days >= longest:
        raise Invalid(f"a what-if covers at most {longest} days", field="first")
    return first, last


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def day_ends(days: Sequence[date], timezone: str) -> list[datetime]:
    zone = ZoneInfo(timezone)
    return [datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC) for day in days]


def demand_by_day(signals: Sequence[Signal], ends: Sequence[datetime], window_days: int) -> list[int]:
    """Distinct patrons in the window ending at each of `ends` (ascending), for one stop's signals sorted by
    time: one pass with a sliding window, whatever the number of days."""
    window = timedelta(days=window_days)
    counts: Counter[str] = Counter()
    lo = hi = 0
    demand = []
    for end in ends:
        while hi < len(signals) and signals[hi].at <= end:
            counts[signals[hi].patron] += 1
            hi += 1
        while lo < hi and signals[lo].at <= end - window:
            counts[signals[lo].patron] -= 1
            if not counts[signals[lo].patron]:
                del counts[signals[lo].patron]
            lo += 1
        demand.append(len(counts))
    return demand


def opened_days(demand: Iterable[int], thresholds: Thresholds) -> list[bool]:
    state, opened = StopState(), []
    for figure in demand:
        state = evaluate(state, figure, pending=0, thresholds=thresholds, round_=True).state
        opened.append(state.enabled)
    return opened


@dataclass(frozen=True)
class StopReplay:
    stop_id: str
    demand: list[int]
    opened: list[bool]


def replay(signals: Iterable[Signal], stop_ids: Iterable[str], days: Sequence[date], window_days: int,
           thresholds: Mapping[str, Thresholds], timezone: str) -> list[StopReplay]:
    """Per stop, per day: the demand and whether the stop would have been open."""
    by_stop: dict[str, list[Signal]] = {stop_id: [] for stop_id in stop_ids}
    for signal in signals:
        if signal.stop_id in by_stop:
            by_stop[signal.stop_id].append(signal)
    ends = day_ends(days, timezone)
    result = []
    for stop_id, stop_signals in by_stop.items():
        stop_signals.sort(key=lambda s: s.at)
        demand = demand_by_day(stop_signals, ends, window_days)
        result.append(StopReplay(stop_id, demand, opened_days(demand, thresholds[stop_id])))
    return result
