"""The bibliobus rule: when a stop opens for mobile drive pickup and when it closes. Plain values, no nameko,
no session; the same code decides live (`control`) and in a replay of the past (`whatif`).

- demand: distinct patrons who asked for the stop (a reservation there, or an interest) over a rolling window;
- open when demand ≥ the enable threshold;
- close when demand stayed below the disable threshold (lower: hysteresis) for `consecutive` evaluation
  rounds in a row, and no reservation still waits for the stop's next visit;
- an analyst's override (`on` / `off`) beats the rule until the stop is given back (`auto`);
- the stop's replica of its reservations only moves forward (`moves_forward`).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from services.common.errors import Invalid

MODES = ("auto", "on", "off")
STOP_KIND = "bibliobus_stop"  # the kind of pickup point a stop is, in reservations' events
# A stop's reservations still to serve (`pending`): waiting for the stop to open, placed, or ready for a visit.
PENDING = ("waiting", "placed", "ready")
# How far a reservation at a stop has come: the stop's replica of it only moves forward (events of one
# reservation arrive on different queues, in any order).
PROGRESS = {"waiting": 0, "placed": 0, "ready": 1, "collected": 2, "cancelled": 2, "expired": 2}


def at_a_stop(reservation: Mapping[str, Any]) -> bool:
    """Is this reservation (an event's data) to be collected at a bibliobus stop?"""
    return reservation["pickup_point"]["kind"] == STOP_KIND


def is_new_demand(placement: Mapping[str, Any]) -> bool:
    """A reservation placed at a stop asks for it; one published again (`drive check --fix`) asked already."""
    return at_a_stop(placement) and not placement["reannounced"]


def moves_forward(current: str, new: str) -> bool:
    """May the replica of a reservation at a stop go from `current` to `new`? Not backwards: a `ready` handled
    after the `collected` it preceded leaves it collected."""
    return PROGRESS[new] >= PROGRESS[current]


@dataclass(frozen=True)
class Thresholds:
    enable: int
    disable: int
    consecutive: int = 3

    def check(self) -> "Thresholds":
        """Bad thresholds are refused, naming the field, before anything is written."""
        if self.enable < 0 or self.disable < 0:
            raise Invalid("thresholds are counts of patrons: zero or more",
                          field="enable_threshold" if self.enable < 0 else "disable_threshold")
        if self.disable >= self.enable:
            raise Invalid(f"the disable threshold ({self.disable}) must be below the enable threshold "
                          f"({self.enable}): the gap keeps a stop from flapping", field="disable_threshold")
        if self.consecutive < 1:
            raise Invalid("a stop closes after at least one evaluation below the disable threshold",
                          field="consecutive_evaluations")
        return self

    def overridden(self, enable: int | None, disable: int | None, consecutive: int | None) -> "Thresholds":
        """A stop's own thresholds where it has them, the network's defaults elsewhere."""
        return Thresholds(self.enable if enable is None else enable, self.disable if disable is None else disable,
                          self.consecutive if consecutive is None else consecutive)


@dataclass(frozen=True)
class StopState:
    enabled: bool = False
    mode: str = "auto"
    rounds_below: int = 0


@dataclass(frozen=True)
class Verdict:
    state: StopState
    changed: bool
    reason: str | None  # "threshold" or "manual" when `changed`


def evaluate(state: StopState, demand: int, pending: int, thresholds: Thresholds, round_: bool) -> Verdict:
    """One evaluation of one stop. `round_`: a scheduled round (the timer), the only kind that counts towards
    closing — a burst of signals must not close a stop sooner. `pending`: reservations at the stop not yet
    collected, cancelled or expired; they keep it open so the vehicle still serves them."""
    if state.mode in ("on", "off"):
        return _switch(state, state.mode == "on", "manual", rounds_below=0)
    if not state.enabled:
        return _switch(state, demand >= thresholds.enable, "threshold", rounds_below=0)
    if demand >= thresholds.disable:
        return _switch(state, True, "threshold", rounds_below=0)
    below = state.rounds_below + (1 if round_ else 0)
    close = below >= thresholds.consecutive and pending == 0
    return _switch(state, not close, "threshold", rounds_below=0 if close else below)


def settled(state: StopState, thresholds: Thresholds) -> bool:
    """Would an evaluation outside the timer's rounds leave this stop as it is, whatever its demand and pending
    reservations? Yes for a stop open under the rule and not counting rounds towards closing (a signal never
    closes a stop, and `rounds_below` is at zero already), and for a forced stop in its forced state. A batch of
    signals then counts nothing for it: most stops of a busy network are open."""
    if state.rounds_below != 0:
        return False
    if state.mode in ("on", "off"):
        return state.enabled == (state.mode == "on")
    return state.enabled and thresholds.consecutive >= 1


def _switch(state: StopState, enabled: bool, reason: str, rounds_below: int) -> Verdict:
    changed = enabled != state.enabled
    if not changed and rounds_below == state.rounds_below:  # most evaluations (a what-if makes 18,000)
        return Verdict(state, False, None)
    return Verdict(replace(state, enabled=enabled, rounds_below=rounds_below), changed, reason if changed else None)


def override(state: StopState, mode: str, reason: str) -> StopState:
    """An analyst takes control (`on`/`off`) or gives the stop back to the rule (`auto`), always saying why."""
    if mode not in MODES:
        raise Invalid(f"mode is one of {', '.join(MODES)}", field="mode")
    if not (reason or "").strip():
        raise Invalid("say why: the reason goes into the audit log", field="reason")
    return replace(state, mode=mode, rounds_below=0)


class Signal(NamedTuple):  # a tuple: a what-if reads 100,000 of them
    stop_id: str
    patron: str
    at: datetime


def window_start(at: datetime, window_days: int) -> datetime:
    return at - timedelta(days=window_days)


def count_demand(signals: Iterable[Signal], at: datetime, window_days: int) -> int:
    """Distinct patrons who asked in the window ending at `at`: asking twice counts once, and an old ask
    falls out of the window."""
    since = window_start(at, window_days)
    return len({s.patron for s in signals if since < s.at <= at})
