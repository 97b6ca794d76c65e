"""Analysts set the network's thresholds and window, or a stop's own thresholds, saying why. Checked whole
before anything is written; applied at once (an evaluation of the stops concerned), and audited: a stop's in
its decisions, the network's in its own audit (old and new values)."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.bibliobus.control import audit, evaluate_stops, lock_stops, network
from services.bibliobus.domain import Thresholds
from services.bibliobus.models import NetworkSettings, Stop, ThresholdChange
from services.bibliobus.policy import Policy
from services.bibliobus.tour import find
from services.common.errors import Invalid
from services.common.relay import Events

VALUES = ("enable_threshold", "disable_threshold", "consecutive_evaluations", "window_days")


def describe(session: Session, policy: Policy) -> dict:
    net = network(session, policy)
    return {"enable_threshold": net.thresholds.enable, "disable_threshold": net.thresholds.disable,
            "consecutive_evaluations": net.thresholds.consecutive, "window_days": net.window_days,
            "updated_by": net.settings.updated_by, "updated_at": net.settings.updated_at}


def set_network(session: Session, outbox: Events, policy: Policy, body: dict, by: str, now: datetime) -> dict:
    row = session.get(NetworkSettings, 1, with_for_update=True, populate_existing=True)
    current = network(session, policy)
    new = Thresholds(body["enable_threshold"], body["disable_threshold"],
                     body.get("consecutive_evaluations") or current.thresholds.consecutive).check()
    for stop in lock_stops(session):  # checked against the stops' own thresholds as they are once locked
        _check_stop(stop.id, new.overridden(stop.enable_threshold, stop.disable_threshold,
                                            stop.consecutive_evaluations))
    before = describe(session, policy)
    row.enable_threshold, row.disable_threshold, row.consecutive_evaluations = new.enable, new.disable, new.consecutive
    row.window_days = body.get("window_days") or current.window_days
    row.updated_by, row.updated_at = by, now
    after = describe(session, policy)
    session.add(ThresholdChange(at=now, changed_by=by, reason=body["reason"],
                                **{f"old_{k}": before[k] for k in VALUES}, **{f"new_{k}": after[k] for k in VALUES}))
    evaluate_stops(session, outbox, policy, now)
    return after


def history(session: Session, limit: int) -> list[dict]:
    """Changes of the network's thresholds, newest first: who, when, from what to what, why."""
    changes = session.scalars(select(ThresholdChange).order_by(ThresholdChange.at.desc(), ThresholdChange.id.desc())
                              .limit(limit))
    return [{"id": c.id, "at": c.at, "changed_by": c.changed_by, "reason": c.reason,
             "before": {k: getattr(c, f"old_{k}") for k in VALUES},
             "after": {k: getattr(c, f"new_{k}") for k in VALUES}} for c in changes]


def set_stop(session: Session, outbox: Events, policy: Policy, stop_id: str, body: dict, by: str,
             now: datetime) -> Stop:
    """`null` gives a threshold back to the network's default."""
    stop = find(session, stop_id, lock=True)
    own = (body["enable_threshold"], body["disable_threshold"], body["consecutive_evaluations"])
    effective = network(session, policy).thresholds.overridden(*own)
    _check_stop(stop.id, effective)
    stop.enable_threshold, stop.disable_threshold, stop.consecutive_evaluations = own
    audit(session, stop.id, "thresholds", "manual", by, body["reason"], stop.demand, effective, now,
          detail={"enable_threshold": own[0], "disable_threshold": own[1], "consecutive_evaluations": own[2]})
    evaluate_stops(session, outbox, policy, now, [stop.id])
    return stop


def _check_stop(stop_id: str, thresholds: Thresholds) -> None:
    try:
        thresholds.check()
    except Invalid as exc:
        raise Invalid(f"stop {stop_id}: {exc.message}", stop=stop_id, **exc.details) from exc
