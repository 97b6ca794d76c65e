"""What analysts and staff read back: stops with their demand and state, a stop's demand day by day, its
audit history, the manifest of its next visit, and what-ifs."""

from datetime import datetime, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, func, select, text, type_coerce
from sqlalchemy.orm import Session

from services.bibliobus import whatif
from services.bibliobus.control import Network, demand_by_stop, network, pending_by_stop
from services.bibliobus.domain import Signal, window_start
from services.bibliobus.models import Decision, DemandSignal, Stop, StopReservation
from services.bibliobus.policy import Policy
from services.bibliobus.tour import find
from services.visits import next_visit


def stop_view(stop: Stop, net: Network, demand: int, pending: int, policy: Policy, now: datetime) -> dict:
    thresholds = net.for_stop(stop)
    visit = next_visit(stop.visits, now, policy.timezone)
    return {"id": stop.id, "name": stop.name, "district": stop.district, "latitude": stop.latitude,
            "longitude": stop.longitude, "capacity_per_visit": stop.capacity_per_visit, "visits": stop.visits,
            "enabled": stop.enabled, "mode": stop.mode, "demand": demand, "pending_reservations": pending,
            "enable_threshold": thresholds.enable, "disable_threshold": thresholds.disable,
            "consecutive_evaluations": thresholds.consecutive, "rounds_below": stop.rounds_below,
            "own_thresholds": any(v is not None for v in (stop.enable_threshold, stop.disable_threshold,
                                                          stop.consecutive_evaluations)),
            "next_visit": visit.as_ref(stop.id) if visit else None, "revision": stop.revision}


def stops_enabled(session: Session) -> int:
    """Stops open for drive pickup now (the `drive_bibliobus_stops_enabled` gauge)."""
    return session.scalar(select(func.count()).select_from(Stop).where(Stop.enabled.is_(True))) or 0


def list_stops(session: Session, policy: Policy, now: datetime, stop_ids: list[str] | None = None) -> list[dict]:
    net = network(session, policy)
    query = select(Stop).order_by(Stop.id)
    stops = session.scalars(query if stop_ids is None else query.where(Stop.id.in_(stop_ids))).all()
    demand = demand_by_stop(session, now, net.window_days, stop_ids)
    pending = pending_by_stop(session, stop_ids)
    return [stop_view(s, net, demand.get(s.id, 0), pending.get(s.id, 0), policy, now) for s in stops]


def stop_detail(session: Session, policy: Policy, stop_id: str, now: datetime) -> dict:
    return list_stops(session, policy, now, [find(session, stop_id).id])[0]


def signals(session: Session, since: datetime, until: datetime, stop_id: str | None = None) -> list[Signal]:
    """The signals of (since, until]; one stop's in order of time. Through the connection, not the ORM session,
    and on PostgreSQL without the UtcDateTime conversion (psycopg2 hands back aware datetimes already): a 90-day
    what-if reads 100,000 rows. Every stop's come unsorted: sorting them in an index scan costs PostgreSQL more
    than the replay's sort per stop."""
    at = DemandSignal.at if session.get_bind().dialect.name == "sqlite" else type_coerce(
        DemandSignal.at, DateTime(timezone=True))
    query = select(DemandSignal.stop_id, DemandSignal.patron, at).where(
        DemandSignal.at > since, DemandSignal.at <= until)
    if stop_id is not None:
        query = query.where(DemandSignal.stop_id == stop_id).order_by(DemandSignal.at)
    return list(map(Signal._make, session.connection().execute(query).all()))


# `whatif.demand_by_day` for every stop at once, where the signals are: each signal's run of days by bisection
# (width_bucket counts the ends at or before its argument; a microsecond less makes it "before", as bisect_left),
# each patron's runs merged in time order (LAG: where the patron's previous run stops; both ends of a run grow
# with time, so ordering by them is ordering by time), counted per stop and run for `whatif.demand_of_runs`. The
# window is added in seconds: an interval in days would follow the session's time zone. COLLATE "C": the
# partition needs equal keys together, not a language's order, and byte order sorts several times faster.
_DAY_CHANGES = text("""
WITH spans AS (
    SELECT stop_id, patron,
           width_bucket(at - interval '1 microsecond', CAST(:ends AS timestamptz[])) AS first_day,
           width_bucket(at + :window * interval '1 second' - interval '1 microsecond',
                        CAST(:ends AS timestamptz[])) AS stop_day
    FROM demand_signals WHERE at > :since AND at <= :until),
runs AS (
    SELECT stop_id, stop_day, greatest(first_day, coalesce(lag(stop_day) OVER (
               PARTITION BY stop_id COLLATE "C", patron COLLATE "C" ORDER BY first_day, stop_day), 0)) AS start_day
    FROM spans)
SELECT stop_id, start_day, stop_day, count(*) FROM runs WHERE stop_day > start_day
GROUP BY stop_id, start_day, stop_day
""")




def demand_by_day_per_stop(session: Session, stop_ids: list[str], ends: list[datetime],
                           window_days: int) -> dict[str, list[int]]:
    """Each stop's demand at each of `ends` (ascending), as `whatif.demand_by_day` computes it. On PostgreSQL in
    one query (a 90-day what-if: 100,000 signals stay in the database; a few thousand rows come back); on SQLite
    (the embedded default, small networks) through the signals themselves."""
    window = timedelta(days=window_days)
    if session.get_bind().dialect.name != "postgresql":
        by_stop: dict[str, list[Signal]] = {stop_id: [] for stop_id in stop_ids}
        for signal in signals(session, window_start(ends[0], window_days), ends[-1]):
            if signal.stop_id in by_stop:
                by_stop[signal.stop_id].append(signal)
        return {stop_id: whatif.demand_by_day(sorted(rows, key=attrgetter("at")), ends, window_days)
                for stop_id, rows in by_stop.items()}
    rows = session.execute(_DAY_CHANGES, {"ends": ends, "window": window.total_seconds(),
                                          "since": ends[0] - window, "until": ends[-1]})
    return whatif.demand_of_runs(rows.tuples(), stop_ids, len(ends))


def demand_report(session: Session, policy: Policy, stop_id: str, days: int, now: datetime) -> dict:
    """The stop's demand at the end of each of the last `days` days (today so far included)."""
    view = stop_detail(session, policy, stop_id, now)
    net = network(session, policy)
    today = now.astimezone(ZoneInfo(policy.timezone)).date()
    calendar = whatif.days_between(today - timedelta(days=days - 1), today)
    ends = [min(end, now) for end in whatif.day_ends(calendar, policy.timezone)]
    recorded = signals(session, window_start(ends[0], net.window_days), now, stop_id)  # in order of time
    series = whatif.demand_by_day(recorded, ends, net.window_days)
    kinds = session.execute(select(DemandSignal.kind).where(
        DemandSignal.stop_id == stop_id, DemandSignal.at > window_start(now, net.window_days))).scalars().all()
    return {**view, "window_days": net.window_days, "reservations_in_window": kinds.count("reservation"),
            "interests_in_window": kinds.count("interest"),
            "series": [{"day": d, "demand": n} for d, n in zip(calendar, series, strict=True)]}


def history(session: Session, stop_id: str, limit: int) -> list[Decision]:
    find(session, stop_id)
    return list(session.scalars(select(Decision).where(Decision.stop_id == stop_id)
                                .order_by(Decision.at.desc(), Decision.id.desc()).limit(limit)))


def manifest(session: Session, policy: Policy, stop_id: str, now: datetime) -> dict:
    """The ready reservations to load for the stop's next visit, within the vehicle's capacity for it."""
    stop = find(session, stop_id)
    visit = next_visit(stop.visits, now, policy.timezone)
    rows = [] if visit is None else session.scalars(select(StopReservation).where(
        StopReservation.stop_id == stop.id, StopReservation.status == "ready",
        StopReservation.visit_arrives_at >= visit.arrives_at, StopReservation.visit_arrives_at < visit.departs_at)
        .order_by(StopReservation.updated_at, StopReservation.reservation_id)).all()
    load = rows[:stop.capacity_per_visit]
    return {"stop_id": stop.id, "name": stop.name, "enabled": stop.enabled,
            "visit": visit.as_ref(stop.id) if visit else None, "capacity": stop.capacity_per_visit,
            "reservations": [{"reservation_id": r.reservation_id, "patron": r.patron, "lines": r.lines}
                             for r in load], "left_for_later": len(rows) - len(load)}


def what_if(session: Session, policy: Policy, body: dict, now: datetime) -> dict:
    """Replay the recorded signals of [first, last] under the given thresholds (each stop's own thresholds
    are replaced too: the question is "what if every stop had these")."""
    today = now.astimezone(ZoneInfo(policy.timezone)).date()
    first, last = whatif.check_period(body["first"], body["last"], today)
    net = network(session, policy)
    window = body.get("window_days") or net.window_days
    thresholds = net.thresholds.overridden(body["enable_threshold"], body["disable_threshold"],
                                           body.get("consecutive_evaluations")).check()
    stops = session.scalars(select(Stop).order_by(Stop.id)).all()
    calendar = whatif.days_between(first, last)
    ends = whatif.day_ends(calendar, policy.timezone)
    demand = demand_by_day_per_stop(session, [s.id for s in stops], ends, window)
    replays = whatif.judge(demand, {s.id: thresholds for s in stops})
    names = {s.id: s.name for s in stops}
    return {"first": first, "last": last, "window_days": window, "enable_threshold": thresholds.enable,
            "disable_threshold": thresholds.disable, "consecutive_evaluations": thresholds.consecutive,
            "days": calendar,
            "stops": [{"stop_id": r.stop_id, "name": names[r.stop_id], "open_days": sum(r.opened),
                       "demand": r.demand, "open": r.opened} for r in replays]}

