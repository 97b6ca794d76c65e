"""The drive calendar: opening hours, closed days, French public holidays, deadlines and slots (no broker)."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common.errors import Invalid
from services.reservations.opening_days import Calendar, check_range, format_week, parse_week

PARIS = ZoneInfo("Europe/Paris")
# Tuesday to Saturday, a morning and an afternoon range (the central library's drive).
WEEK = parse_week({day: ["10:00-12:30", "14:00-18:00"]
                   for day in ("tuesday", "wednesday", "thursday", "friday", "saturday")})


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS)


def test_deadline_over_a_closed_weekend_moves_to_tuesday_closing_time():
    calendar = Calendar(WEEK)
    # Ready Thursday 2026-03-05; ten days on is Sunday 03-15: closed Sunday and Monday → Tuesday 03-17, 18:00.
    assert calendar.after_days(at(date(2026, 3, 5), 11), 10) == at(date(2026, 3, 17), 18)


def test_deadline_over_a_public_holiday_moves_past_it():
    calendar = Calendar(WEEK)
    assert calendar.closed_because(date(2026, 7, 14)) == "Fête nationale"  # a Tuesday, known without typing it
    # Ten days after Saturday 2026-07-04 is Tuesday 07-14, a holiday → Wednesday 07-15.
    assert calendar.after_days(at(date(2026, 7, 4), 15), 10) == at(date(2026, 7, 15), 18)
    # Christmas 2026 is a Friday, and Saturday 26 stays open: a deadline on the 25th moves one day.
    assert calendar.after_days(at(date(2026, 12, 15), 10), 10) == at(date(2026, 12, 26), 18)


def test_due_date_moved_off_a_closure_set_by_staff():
    closed = Calendar(WEEK, closed_days={date(2026, 4, 28): "inventaire", date(2026, 4, 29): "inventaire"})
    # 28 days after Tuesday 03-31 is Tuesday 04-28: closed for stocktaking two days → Thursday 04-30.
    assert closed.after_days(at(date(2026, 3, 31), 16), 28) == at(date(2026, 4, 30), 18)
    # A due date set before the closure was added is read against it by the overdue timer.
    assert closed.still_due(at(date(2026, 4, 28), 18)) == at(date(2026, 4, 30), 18)
    assert closed.still_due(at(date(2026, 4, 24), 18)) == at(date(2026, 4, 24), 18)


def test_slots_skip_a_closed_day_and_fit_inside_each_range():
    calendar = Calendar(WEEK, closed_days={date(2026, 3, 11): "grève"}, slot_minutes=15)
    # Tuesday 10, Wednesday 11 (closed), Thursday 12.
    slots = calendar.slots(date(2026, 3, 10), date(2026, 3, 12))
    days = sorted({s.starts_at.date() for s in slots})
    assert days == [date(2026, 3, 10), date(2026, 3, 12)]
    tuesday = [s for s in slots if s.starts_at.date() == date(2026, 3, 10)]
    assert len(tuesday) == 10 + 16  # 2 h 30 and 4 h of quarter hours
    assert tuesday[0].starts_at == at(date(2026, 3, 10), 10) and tuesday[9].ends_at == at(date(2026, 3, 10), 12, 30)
    assert tuesday[10].starts_at == at(date(2026, 3, 10), 14)  # nothing over lunch
    long_slots = Calendar(parse_week({"tuesday": ["10:00-11:50"]}), slot_minutes=30)
    assert [s.starts_at.time() for s in long_slots.slots(date(2026, 3, 10), date(2026, 3, 10))] == [
        time(10), time(10, 30), time(11)]  # 11:30–12:00 would end after closing


def test_slot_at_names_why_a_moment_is_not_a_slot():
    calendar = Calendar(WEEK, closed_days={date(2026, 3, 11): "grève"})
    assert calendar.slot_at(at(date(2026, 3, 10), 10, 15)).ends_at == at(date(2026, 3, 10), 10, 30)
    with pytest.raises(Invalid, match="grève"):
        calendar.slot_at(at(date(2026, 3, 11), 10))
    with pytest.raises(Invalid, match="no slot starts at 10:07"):
        calendar.slot_at(at(date(2026, 3, 10), 10, 7))
    with pytest.raises(Invalid, match="Lundi de Pâques"):
        calendar.slot_at(at(date(2026, 4, 6), 10))
    # The same moment written in UTC is the same slot.
    assert calendar.slot_at(at(date(2026, 3, 10), 10, 15).astimezone(ZoneInfo("UTC"))).starts_at == \
        at(date(2026, 3, 10), 10, 15)


def test_weekly_hours_are_checked_and_written_back_in_order():
    week = parse_week({"saturday": ["14:00-17:00", "09:30-12:00"]})
    assert format_week(week) == {"saturday": ["09:30-12:00", "14:00-17:00"]}
    for bad in ({"samedi": ["10:00-12:00"]}, {"saturday": ["12:00-10:00"]}, {"saturday": ["10h-12h"]},
                {"saturday": ["10:00-12:00", "11:00-13:00"]}, {"saturday": ["25:00-26:00"]}):
        with pytest.raises(Invalid):
            parse_week(bad)


def test_a_calendar_that_never_opens_says_so():
    with pytest.raises(Invalid, match="does not open"):
        Calendar({}).next_opening_day(date(2026, 3, 10))


def test_day_ranges_are_bounded():
    check_range(date(2026, 3, 1), date(2026, 3, 31))
    with pytest.raises(Invalid, match="before"):
        check_range(date(2026, 3, 2), date(2026, 3, 1))
    with pytest.raises(Invalid, match="at most"):
        check_range(date(2026, 3, 1), date(2026, 3, 1) + timedelta(days=100))
