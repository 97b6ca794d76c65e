"""The bibliobus rule, on plain values: when a stop opens, when it closes, and who wins."""

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from services.bibliobus.domain import (
    PENDING,
    Signal,
    StopState,
    Thresholds,
    at_a_stop,
    count_demand,
    evaluate,
    is_new_demand,
    moves_forward,
    override,
    settled,
)
from services.common.errors import Invalid

RULE = Thresholds(enable=5, disable=2, consecutive=3)
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def run(state: StopState, demand: int, pending: int = 0, round_: bool = True):
    return evaluate(state, demand, pending, RULE, round_)


def rounds(state: StopState, demands: list[int], pending: int = 0) -> list[bool]:
    opened = []
    for demand in demands:
        state = run(state, demand, pending).state
        opened.append(state.enabled)
    return opened


def test_a_closed_stop_opens_when_demand_reaches_the_enable_threshold():
    assert not run(StopState(), 4).changed
    verdict = run(StopState(), 5)
    assert verdict.changed and verdict.state.enabled and verdict.reason == "threshold"
    assert run(StopState(), 5, round_=False).state.enabled  # a signal opens it at once, no round needed


def test_hysteresis_demand_between_the_thresholds_keeps_an_open_stop_open_and_a_closed_one_closed():
    open_ = StopState(enabled=True)
    assert rounds(open_, [4, 3, 2, 2, 2, 2]) == [True] * 6  # never below 2
    assert rounds(StopState(), [4, 3, 2, 4]) == [False] * 4  # never up to 5


def test_closing_takes_consecutive_rounds_below_the_disable_threshold():
    assert rounds(StopState(enabled=True), [1, 1, 1]) == [True, True, False]
    # a round back at or above the disable threshold starts the count again
    assert rounds(StopState(enabled=True), [1, 1, 2, 1, 1, 1]) == [True, True, True, True, True, False]


def test_signals_between_rounds_do_not_count_towards_closing():
    state = StopState(enabled=True)
    for _ in range(10):
        state = run(state, 1, round_=False).state
    assert state.enabled and state.rounds_below == 0


def test_a_stop_with_reservations_still_to_serve_stays_open_and_closes_once_they_are_served():
    assert rounds(StopState(enabled=True), [0, 0, 0, 0], pending=2) == [True] * 4
    state = StopState(enabled=True, rounds_below=4)
    verdict = run(state, 0, pending=0)
    assert verdict.changed and not verdict.state.enabled and verdict.reason == "threshold"


def test_a_manual_override_beats_the_rule_until_it_is_given_back():
    forced_off = override(StopState(enabled=True), "off", "vehicle in the garage")
    verdict = run(forced_off, 50)
    assert verdict.changed and not verdict.state.enabled and verdict.reason == "manual"
    assert rounds(verdict.state, [50, 50]) == [False, False]

    forced_on = override(StopState(), "on", "summer fair at the stop")
    assert rounds(forced_on, [0, 0, 0, 0, 0]) == [True] * 5

    back = override(verdict.state, "auto", "garage done")
    verdict = run(back, 50)
    assert verdict.changed and verdict.state.enabled and verdict.reason == "threshold"


def test_an_override_needs_a_known_mode_and_a_reason():
    with pytest.raises(Invalid) as missing:
        override(StopState(), "off", "  ")
    assert missing.value.details["field"] == "reason"
    with pytest.raises(Invalid) as unknown:
        override(StopState(), "sometimes", "why not")
    assert unknown.value.details["field"] == "mode"


def test_demand_counts_distinct_patrons_in_the_window_and_forgets_older_asks():
    signals = [Signal("s", "C1", NOW - timedelta(days=1)), Signal("s", "C1", NOW - timedelta(hours=1)),
               Signal("s", "C2", NOW - timedelta(days=13)), Signal("s", "C3", NOW - timedelta(days=15))]
    assert count_demand(signals, NOW, 14) == 2
    assert count_demand(signals, NOW + timedelta(days=2), 14) == 1  # C2's ask fell out of the window
    assert count_demand(signals, NOW + timedelta(days=20), 14) == 0


def test_window_expiry_closes_a_stop_once_its_asks_are_old():
    signals = [Signal("s", f"C{n}", NOW) for n in range(5)]
    state = StopState()
    opened = []
    for day in range(20):
        state = run(state, count_demand(signals, NOW + timedelta(days=day), 14)).state
        opened.append(state.enabled)
    assert opened[0] and opened[13]  # asked on day 0: counted until day 13
    assert opened[14] and opened[15] and not opened[16]  # three rounds below, then closed


@pytest.mark.parametrize("enable, disable, consecutive, field", [
    (-1, 0, 3, "enable_threshold"), (5, -1, 3, "disable_threshold"), (3, 4, 3, "disable_threshold"),
    (3, 3, 3, "disable_threshold"), (5, 2, 0, "consecutive_evaluations")])
def test_bad_thresholds_are_refused_naming_the_field(enable, disable, consecutive, field):
    with pytest.raises(Invalid) as refused:
        Thresholds(enable, disable, consecutive).check()
    assert refused.value.details["field"] == field


def test_a_stop_overrides_the_networks_thresholds_where_it_has_its_own():
    assert RULE.overridden(8, None, None) == Thresholds(8, 2, 3)
    assert RULE.overridden(None, None, None) == RULE


def placement(kind: str, reannounced: bool = False) -> dict:
    return {"reservation_id": "r1", "pickup_point": {"id": "p", "kind": kind}, "reannounced": reannounced}


def test_only_a_first_placement_at_a_stop_is_demand():
    assert at_a_stop(placement("bibliobus_stop")) and not at_a_stop(placement("library"))
    assert is_new_demand(placement("bibliobus_stop"))
    assert not is_new_demand(placement("bibliobus_stop", reannounced=True))  # `drive check --fix` asked again
    assert not is_new_demand(placement("counter"))


def test_a_stops_replica_of_a_reservation_only_moves_forward():
    assert moves_forward("waiting", "placed") and moves_forward("placed", "ready")
    assert moves_forward("ready", "collected") and moves_forward("placed", "cancelled")
    assert moves_forward("ready", "ready")  # the same event again
    assert not moves_forward("collected", "ready") and not moves_forward("ready", "placed")
    assert not moves_forward("expired", "waiting")


def test_reservations_still_to_serve_are_those_not_collected_cancelled_or_expired():
    assert set(PENDING) == {"waiting", "placed", "ready"}


def test_a_settled_stop_is_one_no_signal_can_change():
    """`settled` lets a batch of signals skip counting a stop's demand: only where `evaluate`, outside a round,
    leaves the state as it is for every demand and every number of pending reservations."""
    rules = [RULE, Thresholds(enable=1, disable=0, consecutive=1), Thresholds(enable=3, disable=1, consecutive=0)]
    for enabled, mode, below, rule in product((False, True), ("auto", "on", "off"), range(4), rules):
        state = StopState(enabled=enabled, mode=mode, rounds_below=below)
        unchanged = all(evaluate(state, demand, pending, rule, round_=False).state == state
                        for demand in range(8) for pending in range(3))
        assert not settled(state, rule) or unchanged, (state, rule)
    assert settled(StopState(enabled=True), RULE) and not settled(StopState(), RULE)
    assert not settled(StopState(enabled=True, rounds_below=1), RULE)
