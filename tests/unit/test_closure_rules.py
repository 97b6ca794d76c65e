"""Which dates a closure moves and where to, and the closures refused (no broker, no database)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common.errors import Invalid
from services.reservations.continuity import DueItem, check_period, shift_due_dates
from services.reservations.opening_days import Calendar, deadlines_on, parse_week

PARIS = ZoneInfo("Europe/Paris")
WEEK = parse_week({day: ["10:00-12:30", "14:00-18:00"]
                   for day in ("tuesday", "wednesday", "thursday", "friday", "saturday")})
SATURDAY = date(2026, 3, 14)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS)


def test_a_deadline_on_a_day_closed_since_moves_to_the_next_opening_days_closing_time():
    closed = Calendar(WEEK, closed_days={SATURDAY: "grève"})
    # Saturday closed, Sunday and Monday closed every week: Tuesday 17, 18:00.
    assert closed.still_due(at(SATURDAY, 18)) == at(date(2026, 3, 17), 18)
    assert closed.still_due(at(SATURDAY, 9, 30)) == at(date(2026, 3, 17), 18)  # any moment of that day
    assert closed.still_due(at(date(2026, 3, 13), 18)) == at(date(2026, 3, 13), 18)  # the day before stays
    # Closed Saturday and Tuesday: past the weekly closed days and the second closure, to Wednesday.
    twice = Calendar(WEEK, closed_days={SATURDAY: "grève", date(2026, 3, 17): "grève"})
    assert twice.still_due(at(SATURDAY, 18)) == at(date(2026, 3, 18), 18)
    # Into a public holiday: Saturday 2026-07-11 closed, Tuesday 07-14 is the Fête nationale → Wednesday.
    assert Calendar(WEEK, closed_days={date(2026, 7, 11): "grève"}).still_due(at(date(2026, 7, 11), 18)) == at(
        date(2026, 7, 15), 18)


def test_a_drive_open_until_midnight_ends_its_day_at_the_next_midnight():
    late = Calendar(parse_week({"saturday": ["20:00-24:00"], "monday": ["20:00-24:00"]}),
                    closed_days={SATURDAY: "grève"})
    saturday_close = late.closing_time(SATURDAY)
    assert saturday_close == at(date(2026, 3, 15), 0)
    assert late.deadline_day(saturday_close) == SATURDAY
    assert late.still_due(saturday_close) == at(date(2026, 3, 17), 0)  # Monday's closing, midnight after it
    assert late.still_due(at(date(2026, 3, 15), 0, 1)) == at(date(2026, 3, 15), 0, 1)  # Sunday's: not closed


def test_the_window_of_a_days_deadlines_is_the_day_after_its_first_midnight_up_to_its_last():
    after, until = deadlines_on(SATURDAY, PARIS)
    calendar = Calendar(WEEK)
    assert calendar.deadline_day(after) == SATURDAY - timedelta(days=1)  # excluded: the day before ends then
    assert calendar.deadline_day(after + timedelta(microseconds=1)) == SATURDAY
    assert calendar.deadline_day(until) == SATURDAY  # included
    assert calendar.deadline_day(until + timedelta(microseconds=1)) == SATURDAY + timedelta(days=1)
    # Across the change to summer time (2026-03-29, a 23-hour day) the window stays one local day.
    after, until = deadlines_on(date(2026, 3, 29), PARIS)
    assert until.astimezone(UTC) - after.astimezone(UTC) == timedelta(hours=23)


def test_a_closure_that_ends_before_it_starts_is_refused():
    start = datetime(2026, 3, 17, tzinfo=UTC)
    items = [DueItem("loan:1", "C1", start + timedelta(days=1))]
    for until in (start - timedelta(days=3), start):
        for rule, fixed in (("spread", None), ("fixed", date(2026, 5, 12))):
            with pytest.raises(Invalid) as refused:
                shift_due_dates(items, start, until, rule, Calendar(WEEK), fixed, 2)
            assert refused.value.details == {"field": "closed_until"}
        with pytest.raises(Invalid) as refused:
            check_period(start, until)
        assert refused.value.details == {"field": "until"}
    assert shift_due_dates(items, start, start + timedelta(days=7), "spread", Calendar(WEEK)) == {
        "loan:1": at(date(2026, 3, 24), 18)}
