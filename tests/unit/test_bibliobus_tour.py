"""The tour's schedule, the visit a ready reservation gets, and replays of past demand (what-if)."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from services.bibliobus.domain import Signal, Thresholds, count_demand
from services.bibliobus.whatif import check_period, day_ends, days_between, demand_by_day, replay
from services.common.errors import Conflict, Invalid
from services.reservations.domain import choose_visit, initial_status
from services.visits import next_visit, slot_problems, upcoming_visits

PARIS = "Europe/Paris"
TOUR = [{"weekday": "tuesday", "arrives": "09:30", "departs": "10:15"},
        {"weekday": "friday", "arrives": "16:00", "departs": "17:00"}]
MONDAY = datetime(2026, 3, 9, 12, tzinfo=UTC)  # a Monday, winter time (UTC+1)


def test_visits_come_in_order_at_local_times():
    visits = list(upcoming_visits(TOUR, MONDAY, PARIS, weeks=2))
    assert [(v.arrives_at, v.departs_at) for v in visits[:3]] == [
        (datetime(2026, 3, 10, 8, 30, tzinfo=UTC), datetime(2026, 3, 10, 9, 15, tzinfo=UTC)),
        (datetime(2026, 3, 13, 15, tzinfo=UTC), datetime(2026, 3, 13, 16, tzinfo=UTC)),
        (datetime(2026, 3, 17, 8, 30, tzinfo=UTC), datetime(2026, 3, 17, 9, 15, tzinfo=UTC))]


def test_a_visit_under_way_is_no_longer_the_next_one_and_summer_time_is_followed():
    during = datetime(2026, 3, 10, 8, 45, tzinfo=UTC)
    assert next_visit(TOUR, during, PARIS).arrives_at == datetime(2026, 3, 13, 15, tzinfo=UTC)
    after_the_change = datetime(2026, 3, 30, tzinfo=UTC)  # summer time from 29 March: UTC+2
    assert next_visit(TOUR, after_the_change, PARIS).arrives_at == datetime(2026, 3, 31, 7, 30, tzinfo=UTC)


def test_a_schedule_needs_visits_that_end_after_they_start():
    assert slot_problems(TOUR) == []
    assert slot_problems([]) == ["a stop needs at least one visit a week"]
    assert slot_problems([{"weekday": "monday", "arrives": "10:00", "departs": "09:00"}]) == [
        "visit 1: the vehicle must leave after it arrives"]


def test_a_ready_reservation_takes_the_first_visit_with_room():
    visits = list(upcoming_visits(TOUR, MONDAY, PARIS, weeks=2))
    full_first = {visits[0].arrives_at: 3}
    assert choose_visit(visits, {}, 3) == visits[0]
    assert choose_visit(visits, full_first, 3) == visits[1]
    with pytest.raises(Conflict):
        choose_visit(visits, {v.arrives_at: 3 for v in visits}, 3)


def test_only_a_closed_bibliobus_stop_makes_a_reservation_wait():
    assert initial_status("bibliobus_stop", False) == "waiting_for_stop"
    assert initial_status("bibliobus_stop", True) == "placed"
    assert initial_status("counter", False) == "placed"


def test_demand_day_by_day_is_a_sliding_window_of_distinct_patrons():
    start = datetime(2026, 3, 1, 10, tzinfo=UTC)
    signals = [Signal("s", "C1", start), Signal("s", "C1", start + timedelta(days=1)),
               Signal("s", "C2", start + timedelta(days=2))]
    ends = day_ends(days_between(date(2026, 3, 1), date(2026, 3, 6)), PARIS)
    assert demand_by_day(signals, ends, window_days=3) == [1, 1, 2, 2, 1, 0]


def test_a_what_if_replays_each_stop_under_the_given_thresholds():
    start = datetime(2026, 3, 1, 10, tzinfo=UTC)
    busy = [Signal("busy", f"C{n}", start + timedelta(hours=n)) for n in range(6)]
    quiet = [Signal("quiet", "C1", start)]
    days = days_between(date(2026, 3, 1), date(2026, 3, 20))
    strict = Thresholds(enable=5, disable=2, consecutive=2)
    result = {r.stop_id: r for r in replay(busy + quiet, ["busy", "quiet"], days, 7, {"busy": strict,
                                                                                     "quiet": strict}, PARIS)}
    assert result["busy"].demand[:8] == [6, 6, 6, 6, 6, 6, 6, 0]
    assert result["busy"].opened[:10] == [True] * 8 + [False, False]  # day 7: first below 2; day 8: closed
    assert not any(result["quiet"].opened)
    lenient = {"quiet": Thresholds(2, 1, 1)}
    assert replay(quiet * 2 + [Signal("quiet", "C2", start)], ["quiet"], days, 7, lenient, PARIS)[0].opened == [
        True] * 7 + [False] * 13  # one day below 1 is enough here
    never_closes = {"quiet": Thresholds(1, 0, 1)}  # disable at 0: demand is never below it
    assert all(replay(quiet, ["quiet"], days, 7, never_closes, PARIS)[0].opened)


@pytest.mark.parametrize("first, last, field", [
    (date(2026, 3, 5), date(2026, 3, 4), "last"),  # ends before it starts
    (date(2026, 3, 1), date(2026, 3, 10), "last"),  # ends after today: a what-if replays the past
    (date(2025, 3, 8), date(2026, 3, 9), "first")])  # 367 days
def test_a_what_if_period_is_past_in_order_and_at_most_a_year(first, last, field):
    with pytest.raises(Invalid) as refused:
        check_period(first, last, today=date(2026, 3, 9))
    assert refused.value.details["field"] == field


def test_a_what_if_may_end_today_and_cover_366_days():
    assert check_period(date(2025, 3, 9), date(2026, 3, 9), today=date(2026, 3, 9)) == (date(2025, 3, 9),
                                                                                        date(2026, 3, 9))


def test_demand_day_by_day_counts_what_the_rule_counts_at_each_day_end():
    """The day-by-day series (bisection and merged runs) is `count_demand` at each end, boundaries included: a
    signal exactly at a day's end, exactly a window before one, across the change to summer time, asked twice."""
    rng = random.Random(5)
    ends = day_ends(days_between(date(2026, 3, 10), date(2026, 4, 10)), PARIS)  # summer time on 29 March
    window = 7
    at_edges = [end - timedelta(days=window) for end in ends[::3]] + ends[::4]
    times = [ends[0] - timedelta(days=8) + timedelta(seconds=rng.uniform(0, 40 * 86400)) for _ in range(400)]
    signals = sorted((Signal("s", f"C{rng.randrange(25)}", at) for at in times + at_edges + at_edges[:5]),
                     key=lambda s: s.at)
    assert demand_by_day(signals, ends, window) == [count_demand(signals, end, window) for end in ends]
