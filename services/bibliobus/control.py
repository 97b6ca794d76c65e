"""Deciding, inside the caller's transaction: evaluate stops against the rule, switch them on or off, take
and give back control, claim the timer's round, and record a patron's interest (evaluated at once). Every
switch publishes `stop_enabled`/`stop_disabled` through the outbox and writes an audit entry in the same
transaction."""

from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import distinct, func, select, update
from sqlalchemy.orm import Session

from services.bibliobus import domain
from services.bibliobus.domain import StopState, Thresholds
from services.bibliobus.models import Decision, DemandSignal, NetworkSettings, Stop, StopReservation
from services.bibliobus.policy import Policy
from services.bibliobus.tour import find
from services.common import clock
from services.common.correlation import Caused, caused_by
from services.common.relay import Events

RULE = "rule"


@dataclass(frozen=True)
class Network:
    thresholds: Thresholds
    window_days: int
    settings: NetworkSettings

    def for_stop(self, stop: Stop) -> Thresholds:
        return self.thresholds.overridden(stop.enable_threshold, stop.disable_threshold,
                                          stop.consecutive_evaluations)


def network(session: Session, policy: Policy) -> Network:
    row = session.get(NetworkSettings, 1) or NetworkSettings(id=1)
    thresholds = policy.thresholds.overridden(row.enable_threshold, row.disable_threshold,
                                              row.consecutive_evaluations)
    return Network(thresholds, row.window_days or policy.window_days, row)


def demand_by_stop(session: Session, now: datetime, window_days: int, stop_ids: Iterable[str] | None = None,
                   ) -> dict[str, int]:
    """Distinct patrons per stop over the window, in one grouped query (an index on stop and time)."""
    query = (select(DemandSignal.stop_id, func.count(distinct(DemandSignal.patron)))
             .where(DemandSignal.at > domain.window_start(now, window_days), DemandSignal.at <= now)
             .group_by(DemandSignal.stop_id))
    if stop_ids is not None:
        query = query.where(DemandSignal.stop_id.in_(list(stop_ids)))
    return dict(session.execute(query).all())


def pending_by_stop(session: Session, stop_ids: Iterable[str] | None = None) -> dict[str, int]:
    query = (select(StopReservation.stop_id, func.count()).where(StopReservation.status.in_(domain.PENDING))
             .group_by(StopReservation.stop_id))
    if stop_ids is not None:
        query = query.where(StopReservation.stop_id.in_(list(stop_ids)))
    return dict(session.execute(query).all())


def lock_stops(session: Session, stop_ids: Iterable[str] | None = None) -> list[Stop]:
    """Lock stops (all of them by default) in id order, so that two deciders never deadlock, and read them
    as they are once locked: a copy loaded earlier in this session may predate another transaction's switch
    (refreshed by `populate_existing`). On SQLite the transaction holds the database's write lock already."""
    query = select(Stop).order_by(Stop.id).with_for_update().execution_options(populate_existing=True)
    return list(session.scalars(query if stop_ids is None else query.where(Stop.id.in_(sorted(set(stop_ids))))))


def evaluate_stops(session: Session, outbox: Events, policy: Policy, now: datetime,
                   stop_ids: Iterable[str] | None = None, round_: bool = False,
                   causes: Mapping[str, Caused] | None = None) -> list[Stop]:
    """Evaluate stops (all of them by default) and switch those the rule says to, deciding on their state
    once locked, so a signal's evaluation, an override and the timer's round never decide on one stop at once.
    `now` is when the caller began; the demand is counted at the moment the locks are held (not before):
    signals committed meanwhile by whoever held them were stamped after `now`, and count. `causes`: for a batch of
    signals, the event that caused each stop's evaluation (its switch carries that event's correlation)."""
    ids = None if stop_ids is None else sorted(set(stop_ids))
    stops = lock_stops(session, ids)
    now = max(now, clock.now())
    net = network(session, policy)
    if not round_:  # stops a signal cannot change are not counted (locked all the same, and read once locked)
        stops = [stop for stop in stops if not domain.settled(state_of(stop), net.for_stop(stop))]
        if not stops:
            return []
        ids = [stop.id for stop in stops]
    demand = demand_by_stop(session, now, net.window_days, ids)
    pending = pending_by_stop(session, ids)
    switched = []
    for stop in stops:
        thresholds = net.for_stop(stop)
        figure = demand.get(stop.id, 0)
        verdict = domain.evaluate(state_of(stop), figure, pending.get(stop.id, 0), thresholds, round_)
        if stop.rounds_below != verdict.state.rounds_below:
            stop.rounds_below = verdict.state.rounds_below
        if round_ or verdict.changed:  # a stop's row is written by rounds and switches, not at every signal
            stop.demand, stop.evaluated_at = figure, now
        if verdict.changed:
            cause = (causes or {}).get(stop.id)
            with caused_by(cause) if cause is not None else nullcontext():
                switch(session, outbox, stop, verdict.state.enabled, verdict.reason, RULE, None, thresholds, now)
            switched.append(stop)
    return switched


def state_of(stop: Stop) -> StopState:
    return StopState(enabled=stop.enabled, mode=stop.mode, rounds_below=stop.rounds_below)


def switch(session: Session, outbox: Events, stop: Stop, enabled: bool, reason: str, decided_by: str,
           note: str | None, thresholds: Thresholds, now: datetime) -> None:
    stop.enabled = enabled
    stop.revision += 1
    action = "enabled" if enabled else "disabled"
    outbox.publish(session, f"stop_{action}", {
        "stop_id": stop.id, "revision": stop.revision, "reason": reason, "demand": stop.demand,
        "enable_threshold": thresholds.enable, "disable_threshold": thresholds.disable,
        "decided_by": decided_by, "note": note, "decided_at": now})
    audit(session, stop.id, action, reason, decided_by, note, stop.demand, thresholds, now)


def audit(session: Session, stop_id: str | None, action: str, reason: str, decided_by: str, note: str | None,
          demand: int | None, thresholds: Thresholds, now: datetime, detail: dict | None = None) -> None:
    session.add(Decision(stop_id=stop_id, at=now, action=action, reason=reason, decided_by=decided_by, note=note,
                         demand=demand, enable_threshold=thresholds.enable, disable_threshold=thresholds.disable,
                         detail=detail))


def take_control(session: Session, outbox: Events, policy: Policy, stop: Stop, mode: str, note: str, by: str,
                 now: datetime) -> None:
    """An analyst forces the stop on or off, or gives it back to the rule (evaluated at once). `stop`: locked
    and read by the caller (`tour.find(lock=True)`)."""
    state = domain.override(state_of(stop), mode, note)
    net = network(session, policy)
    stop.mode, stop.rounds_below = state.mode, state.rounds_below
    stop.demand = demand_by_stop(session, now, net.window_days, [stop.id]).get(stop.id, 0)
    thresholds = net.for_stop(stop)
    audit(session, stop.id, f"override_{mode}", "manual", by, note, stop.demand, thresholds, now)
    if mode == "auto":
        evaluate_stops(session, outbox, policy, now, [stop.id])
        return
    verdict = domain.evaluate(state, stop.demand, 0, thresholds, round_=False)  # forced: pending plays no part
    if verdict.changed:
        switch(session, outbox, stop, verdict.state.enabled, verdict.reason, by, note, thresholds, now)


def claim_round(session: Session, now: datetime, every_seconds: float) -> bool:
    """One replica runs each timer round: the first conditional update wins; another replica's update waits
    on the row lock, then finds the round taken. Half a period of slack absorbs the timers' jitter."""
    recent = now - timedelta(seconds=every_seconds / 2)
    claimed = session.execute(
        update(NetworkSettings).where(NetworkSettings.id == 1, (NetworkSettings.last_round_at.is_(None))
                                      | (NetworkSettings.last_round_at <= recent))
        .values(last_round_at=now).execution_options(synchronize_session=False)).rowcount
    return claimed == 1


def run_round(session: Session, outbox: Events, policy: Policy, now: datetime) -> list[Stop] | None:
    """The timer's evaluation round (the only evaluations that count towards closing a stop)."""
    if not claim_round(session, now, policy.round_seconds):
        return None
    return evaluate_stops(session, outbox, policy, now, round_=True)


def record_interest(session: Session, outbox: Events, policy: Policy, stop_id: str, patron: str, by: str,
                    now: datetime) -> Stop:
    """"I would collect at this stop", from the patron or from staff taking a phone call. The stop is locked
    before it is read: calls at the same moment queue, and each decides on the state the previous one left."""
    stop = find(session, stop_id, lock=True)
    session.add(DemandSignal(stop_id=stop.id, patron=patron, kind="interest", recorded_by=by, at=now))
    session.flush()
    evaluate_stops(session, outbox, policy, now, [stop.id])
    return stop
