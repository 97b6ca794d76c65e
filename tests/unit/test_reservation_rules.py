"""Reservations' rules, called directly: state machine, quota, deadlines, fines, reminders, walk order."""

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import Conflict, Invalid
from services.reservations import domain

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("current,target", [("placed", "allocated"), ("allocated", "ready"), ("ready", "collected"),
                                            ("placed", "cancelled"), ("ready", "cancelled"), ("ready", "expired")])
def test_allowed_transitions(current, target):
    domain.ensure_transition(current, target)


@pytest.mark.parametrize("current,target", [("cancelled", "collected"), ("ready", "ready"), ("collected", "cancelled"),
                                            ("placed", "ready"), ("expired", "ready"), ("allocated", "expired")])
def test_refused_transitions(current, target):
    with pytest.raises(Conflict, match=f"{current} cannot become {target}"):
        domain.ensure_transition(current, target)


def test_ready_needs_every_line_allocated():
    domain.ensure_ready_to_prepare("allocated", ["allocated", "allocated"])
    with pytest.raises(Conflict, match="1 line"):
        domain.ensure_ready_to_prepare("allocated", ["allocated", "waitlisted"])


def test_quota_counts_reservations_and_loans_together():
    quota = domain.Quota(max_items=10, max_by_material={"dvd": 3})
    quota.check(["book"] * 8, ["book", "book"])
    with pytest.raises(Invalid, match="11 documents"):
        quota.check(["book"] * 8, ["book", "comic", "book"])


def test_quota_per_material():
    quota = domain.Quota(max_items=10, max_by_material={"dvd": 3})
    quota.check(["dvd", "dvd"], ["dvd", "book"])
    with pytest.raises(Invalid, match="4 dvd"):
        quota.check(["dvd", "dvd"], ["dvd", "dvd"])


def test_material_limits_parse():
    assert domain.parse_material_limits("dvd:3, cd:5") == {"dvd": 3, "cd": 5}
    assert domain.parse_material_limits("") == {}


def test_holds_are_shelved_by_the_last_digits_of_the_card():
    assert domain.hold_shelf_for("C001042") == "42"
    assert domain.hold_shelf_for("7") == "07"


def test_days_overdue_counts_whole_days_and_never_negative():
    due = T0
    assert domain.days_overdue(due, due - timedelta(days=3)) == 0
    assert domain.days_overdue(due, due + timedelta(hours=13)) == 0  # same day
    assert domain.days_overdue(due, due + timedelta(days=1, hours=1)) == 1
    assert domain.days_overdue(due, due + timedelta(days=12)) == 12


def test_fines_accrue_per_day_up_to_the_cap():
    fines = domain.FinePolicy(cents_per_day=20, cap_cents=500)
    assert fines.fine(T0, T0 + timedelta(days=3)) == 60
    assert fines.fine(T0, T0 + timedelta(days=40)) == 500
    assert fines.fine(T0, T0 - timedelta(days=1)) == 0
    assert domain.FinePolicy(cents_per_day=0, cap_cents=0).fine(T0, T0 + timedelta(days=9)) == 0


def test_backdated_return_pays_nothing_for_days_in_the_return_box():
    fines = domain.FinePolicy(cents_per_day=20, cap_cents=500)
    dropped = T0 - timedelta(days=1)  # dropped before the due date, checked in five days later
    assert fines.fine(T0, dropped) == 0


def test_reminder_steps():
    steps = domain.parse_steps("7,1,21")
    assert steps == [1, 7, 21]
    assert [domain.reminder_step(d, steps) for d in (0, 1, 6, 7, 20, 21, 90)] == [0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError):
        domain.parse_steps("0,3")


def test_walk_order_local_shelves_first_in_natural_order_then_transfers():
    lines = [{"site": "central", "shelf_mark": "R HOL 2", "barcode": "c"},
             {"site": "neighbourhood", "shelf_mark": "R 10", "barcode": "b"},
             {"site": "neighbourhood", "shelf_mark": "R 9", "barcode": "a"},
             {"site": "neighbourhood", "shelf_mark": "BD 3", "barcode": "d"}]
    ordered = sorted(lines, key=lambda ln: domain.walk_order(ln, "neighbourhood"))
    assert [ln["barcode"] for ln in ordered] == ["d", "a", "b", "c"]
