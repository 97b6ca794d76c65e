"""Replays of recorded demand: each stop's demand day by day, and what the rule would have done with other
thresholds. Plain functions on plain values (the bench replays 90 days of 100,000 signals with them).

The replay evaluates once a day, at the end of the day (local time), so `consecutive` counts days there;
it starts with every stop closed and under the rule (no override), and knows no pending reservation."""

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from operator import attrgetter
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


def demand_by_day(signals: Iterable[Signal], ends: Sequence[datetime], window_days: int) -> list[int]:
    """Distinct patrons in the window ending at each of `ends` (ascending), for one stop's signals sorted by
    time. A signal counts for the ends in [its time, its time + window): a run of days found by bisection, so each
    signal costs two look-ups whatever the number of days, and a patron's runs are merged (asking twice in a
    window counts once): +1 where a patron's coverage starts, -1 where it stops, summed day by day."""
    window = timedelta(days=window_days)
    change = [0] * (len(ends) + 1)
    covered: dict[str, int] = {}  # per patron: the first day its signals so far no longer count for
    for signal in signals:
        start = bisect_left(ends, signal.at)  # the first end at or after the signal
        stop = bisect_left(ends, signal.at + window)  # the first end the signal is too old for
        start = max(start, covered.get(signal.patron, 0))
        if stop > start:  # sorted by time: `stop` never decreases, so each patron's coverage grows at its end
            change[start] += 1
            change[stop] -= 1
            covered[signal.patron] = stop
    return list(accumulate(change[:-1]))


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
    demand = {}
    for stop_id, stop_signals in by_stop.items():
        stop_signals.sort(key=attrgetter("at"))
        demand[stop_id] = demand_by_day(stop_signals, ends, window_days)
    return judge(demand, thresholds)


def judge(demand: Mapping[str, list[int]], thresholds: Mapping[str, Thresholds]) -> list[StopReplay]:
    """Per stop, in the order given: whether the rule would have opened it, day by day, on its demand series."""
    return [StopReplay(stop_id, series, opened_days(series, thresholds[stop_id])) for stop_id, series in demand.items()]


def demand_of_runs(runs: Iterable[tuple[str, int, int, int]], stop_ids: Iterable[str], days: int,
                   ) -> dict[str, list[int]]:
    """Demand series from (stop, first day, day after the last, patrons) rows: the days each patron's merged
    signals count for, as `demand_by_day` finds them (what `views.demand_by_day_per_stop` reads from PostgreSQL)."""
    change = {stop_id: [0] * (days + 1) for stop_id in stop_ids}
    for stop_id, start, stop, patrons in runs:
        if stop_id in change:
            change[stop_id][start] += patrons
            change[stop_id][stop] -= patrons
    return {stop_id: list(accumulate(series[:-1])) for stop_id, series in change.items()}
