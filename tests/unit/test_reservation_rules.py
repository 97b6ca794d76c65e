"""Reservations' rules, called directly: state machine and its status sets, quota, claims, appointments and
arrivals, selections, deadlines, fines, reminders, walk order."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

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


def test_every_transition_made_by_a_conditional_update_comes_from_the_state_machine():
    # Inventory's answer, the expiry timer and a stop opening move reservations by SQL; their WHERE is this.
    assert domain.ALLOCATABLE == ("placed",)
    assert domain.EXPIRABLE == ("ready",)
    assert domain.AWAITING_STOP == ("waiting_for_stop",)
    assert set(domain.sources("cancelled")) == set(domain.OPEN_STATUSES)
    assert domain.sources("waiting_for_stop") == ()  # only ever a first status
    for target in domain.TRANSITIONS:
        for current in domain.sources(target):
            domain.ensure_transition(current, target)


def test_status_sets_are_open_statuses_of_the_state_machine():
    final = {s for s, targets in domain.TRANSITIONS.items() if not targets}
    assert set(domain.OPEN_STATUSES) == set(domain.TRANSITIONS) - final
    assert set(domain.TO_PREPARE) | set(domain.HOLDING_STATUSES) <= set(domain.OPEN_STATUSES)
    assert set(domain.PICKUP_OUTCOMES) == {s for s in final if s in domain.TRANSITIONS["ready"]} - {"cancelled"}
    assert set(domain.WAITING_LINE_STATUSES) | set(domain.WAITLISTABLE_LINE_STATUSES) <= set(
        domain.OPEN_LINE_STATUSES)


def test_lines_still_waiting_for_a_copy():
    assert domain.lines_waiting(["allocated", "pending", "waitlisted", "cancelled"]) == 2
    assert domain.lines_waiting(["allocated", "collected"]) == 0


def test_only_whoever_claimed_it_prepares_it():
    domain.ensure_free_to_prepare(None, "anne")
    domain.ensure_free_to_prepare("anne", "anne")
    with pytest.raises(Conflict, match="anne is preparing") as refused:
        domain.ensure_free_to_prepare("anne", "bruno")
    assert refused.value.details == {"claimed_by": "anne"}


def test_quota_left_and_the_quota_of_a_selection():
    quota = domain.Quota(max_items=10, max_by_material={"dvd": 3})
    assert [quota.left(n) for n in (0, 7, 10, 12)] == [10, 3, 0, 0]
    quota.check_selection(7, 3)
    with pytest.raises(Invalid, match=r"4 documents is more than the card's quota allows now \(3 left of 10\)") as no:
        quota.check_selection(7, 4)
    assert no.value.details == {"field": "documents", "quota_left": 3}


def test_a_slot_is_booked_for_a_ready_reservation_at_a_counter():
    domain.ensure_bookable("ready", "counter")
    for status in ("placed", "allocated", "collected", "expired"):
        with pytest.raises(Conflict, match=f"{status} cannot be booked"):
            domain.ensure_bookable(status, "counter")
    with pytest.raises(Invalid, match="a bibliobus stop has visits") as refused:
        domain.ensure_bookable("ready", "bibliobus_stop")
    assert refused.value.details == {"field": "pickup_point"}


def test_a_slot_booked_is_not_started_and_before_the_pickup_deadline():
    deadline = T0 + timedelta(days=3)
    domain.ensure_slot_in_time(T0 + timedelta(hours=1), T0, deadline)
    domain.ensure_slot_in_time(T0 + timedelta(days=30), T0, None)  # no deadline yet: no limit
    for starts_at, why in ((T0, "already started"), (deadline, "waits only until")):
        with pytest.raises(Invalid, match=why) as refused:
            domain.ensure_slot_in_time(starts_at, T0, deadline)
        assert refused.value.details == {"field": "starts_at"}


def test_an_arrival_is_news_once_a_local_day():
    paris = ZoneInfo("Europe/Paris")
    evening = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 23:30 in Paris
    assert domain.arrival_is_news(None, T0, paris)
    assert not domain.arrival_is_news(T0, evening, paris)  # the same day in Paris
    assert domain.arrival_is_news(evening, evening + timedelta(hours=1), paris)  # past midnight in Paris
    domain.ensure_can_arrive("placed")
    with pytest.raises(Conflict, match="collected has nothing to hand over"):
        domain.ensure_can_arrive("collected")


@pytest.mark.parametrize("audience,ages", [("adult", (None, None)), ("youth", (0, 18)), ("youth", (8, 8))])
def test_audiences_accepted(audience, ages):
    domain.check_audience(audience, *ages)


@pytest.mark.parametrize("audience,ages,field,why", [
    ("adult", (3, 6), "age_min", "for youth selections"), ("youth", (None, 9), "age_min", "needs an age range"),
    ("youth", (3, 19), "age_min", "between 0 and 18"), ("youth", (9, 3), "age_max", "upside down")])
def test_audiences_refused(audience, ages, field, why):
    with pytest.raises(Invalid, match=why) as refused:
        domain.check_audience(audience, *ages)
    assert refused.value.details == {"field": field}


def test_a_selection_is_prepared_while_requested_with_at_most_the_documents_and_kinds_asked():
    domain.ensure_selection_open("requested")
    with pytest.raises(Conflict, match="already prepared"):
        domain.ensure_selection_open("prepared")
    materials = {"t1": "book", "t2": "dvd", "t3": "comic"}
    domain.check_choice(["t1", "t3", "unknown"], 3, materials, ["book", "comic"])  # unknown: refused by placing
    with pytest.raises(Invalid, match="3 titles chosen for a selection of 2"):
        domain.check_choice(["t1", "t2", "t3"], 2, materials, ["book", "dvd", "comic"])
    with pytest.raises(Invalid, match=r"not among the kinds asked \(book\): t2"):
        domain.check_choice(["t1", "t2"], 2, materials, ["book"])
