"""Continuity rules: suspended days are not fined, a grace period after reopening, due dates moved off a
closure (fixed or spread over opening days, one patron's loans on one day), onto each point's opening days."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from services.common.errors import Invalid
from services.reservations.continuity import DueItem, Suspension, overdue_days, shift_due_dates
from services.reservations.opening_days import Calendar, parse_week

# The network's default calendar (the policy's): Tuesday to Saturday, 10:00-12:30 and 14:00-18:00.
NETWORK = Calendar(parse_week({day: ["10:00-12:30", "14:00-18:00"]
                               for day in ("tuesday", "wednesday", "thursday", "friday", "saturday")}))
LOCKDOWN = Suspension(datetime(2026, 3, 17, tzinfo=UTC), datetime(2026, 5, 11, tzinfo=UTC))


def test_no_day_inside_a_suspension_counts():
    due = datetime(2026, 3, 10, 12, tzinfo=UTC)
    assert overdue_days(due, datetime(2026, 3, 16, 12, tzinfo=UTC)) == 6
    assert overdue_days(due, datetime(2026, 3, 16, 12, tzinfo=UTC), [LOCKDOWN]) == 6
    assert overdue_days(due, datetime(2026, 4, 20, tzinfo=UTC), [LOCKDOWN]) == 6  # frozen during lockdown
    assert overdue_days(due, datetime(2026, 5, 13, 9, tzinfo=UTC), [LOCKDOWN]) == 9  # 11, 12 and 13 May count


def test_grace_after_the_suspension():
    due = datetime(2026, 4, 1, tzinfo=UTC)  # due during lockdown
    assert overdue_days(due, datetime(2026, 5, 20, 9, tzinfo=UTC), [LOCKDOWN], grace_days=14) == 0
    assert overdue_days(due, datetime(2026, 5, 27, 9, tzinfo=UTC), [LOCKDOWN], grace_days=14) == 3  # 25, 26, 27 May


def test_suspension_days():
    short = Suspension(datetime(2026, 3, 17, 8, tzinfo=UTC), datetime(2026, 3, 19, tzinfo=UTC))
    assert short.days() == {date(2026, 3, 17), date(2026, 3, 18)}
    assert short.covers(datetime(2026, 3, 18, 23, tzinfo=UTC)) and not short.covers(datetime(2026, 3, 19, tzinfo=UTC))


def test_opening_days_skip_sundays_mondays_and_public_holidays():
    assert not NETWORK.is_open(date(2026, 5, 1))  # Labour Day, a Friday
    assert NETWORK.opening_days_after(date(2026, 4, 30), 3) == [date(2026, 5, 2), date(2026, 5, 5), date(2026, 5, 6)]


ITEMS = [DueItem(f"loan{n}", f"C{n % 7}", datetime(2026, 4, 1, tzinfo=UTC) + timedelta(days=n)) for n in range(30)]


def test_spread_over_opening_days_keeps_a_patron_on_one_day():
    moved = shift_due_dates(ITEMS, LOCKDOWN.starts_at, LOCKDOWN.ends_at, "spread", NETWORK, spread_days=3)
    assert len(moved) == 30
    days = {item.patron: {moved[item.key].date() for item in ITEMS if item.patron == p} for item in ITEMS
            for p in [item.patron]}
    assert all(len(d) == 1 for d in days.values())
    per_day = Counter(when.date() for when in moved.values())
    assert set(per_day) == {date(2026, 5, 12), date(2026, 5, 13), date(2026, 5, 15)}  # 14 May: Ascension
    assert max(per_day.values()) - min(per_day.values()) <= 5  # no more than one patron's loans apart


def test_fixed_date_and_only_items_inside_the_closure():
    outside = DueItem("late", "C1", datetime(2026, 6, 1, tzinfo=UTC))
    moved = shift_due_dates([*ITEMS[:2], outside], LOCKDOWN.starts_at, LOCKDOWN.ends_at, "fixed", NETWORK,
                            fixed=date(2026, 5, 30))
    assert set(moved) == {"loan0", "loan1"} and moved["loan0"].date() == date(2026, 5, 30)
    with pytest.raises(Invalid):
        shift_due_dates(ITEMS, LOCKDOWN.starts_at, LOCKDOWN.ends_at, "fixed", NETWORK, fixed=date(2026, 4, 1))
    with pytest.raises(Invalid):
        shift_due_dates(ITEMS, LOCKDOWN.starts_at, LOCKDOWN.ends_at, "lottery", NETWORK)


def test_each_date_lands_on_its_points_opening_days_at_its_closing_time():
    # A point open Wednesdays until 19:00, closed on Wednesday 13 May by its staff.
    wednesdays = Calendar(parse_week({"wednesday": ["10:00-19:00"]}), closed_days={date(2026, 5, 13): "inventaire"})
    items = [DueItem("here", "C1", datetime(2026, 4, 2, tzinfo=UTC), point="wednesdays"),
             DueItem("network", "C2", datetime(2026, 4, 2, tzinfo=UTC), point="central")]
    calendars = {"wednesdays": wednesdays, "central": NETWORK}.__getitem__
    fixed = shift_due_dates(items, LOCKDOWN.starts_at, LOCKDOWN.ends_at, "fixed", NETWORK, date(2026, 5, 12),
                            calendar_of=calendars)
    paris = NETWORK.tz
    assert fixed == {"here": datetime(2026, 5, 20, 19, tzinfo=paris),  # its next Wednesday open, at 19:00
                     "network": datetime(2026, 5, 12, 18, tzinfo=paris)}
    # The spread's days are the network's; a point closed that day takes its own next opening day.
    spread = shift_due_dates(items, LOCKDOWN.starts_at, LOCKDOWN.ends_at, "spread", NETWORK, spread_days=1,
                             calendar_of=calendars)
    assert spread == fixed


def test_a_day_closed_everywhere_is_no_day_of_a_spread():
    closed = Calendar(NETWORK.hours, closed_days={date(2026, 5, 12): "grève"})
    moved = shift_due_dates(ITEMS, LOCKDOWN.starts_at, LOCKDOWN.ends_at, "spread", closed, spread_days=2)
    assert {when.date() for when in moved.values()} == {date(2026, 5, 13), date(2026, 5, 15)}
