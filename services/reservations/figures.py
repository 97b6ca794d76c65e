"""The figures the library reports on: per local day (the policy's time zone), pickup point and channel, what
was placed, asked, prepared, collected and not collected, how long preparing and waiting at the counter took;
per day and pickup point, how full the appointment slots were.

`aggregate` is the arithmetic, on plain records (no session, no nameko); `report` reads those records for a
range of days with a few selective queries (every reservation, selection and appointment of the range at once,
never a query per day) and hands them over."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from statistics import median
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from services.reservations import domain
from services.reservations.models import Appointment, PickupPoint, PickupSlot, Reservation, Selection
from services.reservations.opening_days import Calendar, check_range
from services.reservations.pickup_points import calendar_of, capacity_of, during
from services.reservations.policy import Policy

MAX_DAYS = 366
COUNTERS = ("reservations_placed", "selections_asked", "selections_prepared", "selections_nothing_available",
            "collections", "no_shows")
PREPARED = domain.SELECTION_PREPARED


@dataclass(frozen=True)
class ReservationFact:
    pickup_point: str
    channel: str
    status: str
    placed_at: datetime
    closed_at: datetime | None = None
    arrived_at: datetime | None = None


@dataclass(frozen=True)
class SelectionFact:
    pickup_point: str
    channel: str
    status: str
    requested_at: datetime
    prepared_at: datetime | None = None


@dataclass(frozen=True)
class BookingFact:
    """An appointment booked or honoured (not cancelled, not moved away)."""

    pickup_point: str
    starts_at: datetime


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    prepare_minutes: list[float] = field(default_factory=list)
    wait_seconds: list[float] = field(default_factory=list)


def _median(samples: list[float], digits: int = 1) -> float | None:
    return round(median(samples), digits) if samples else None


def _ratio(booked: int, places: int) -> float | None:
    return round(booked / places, 4) if places else None


def places_by_day(calendar: Calendar, capacities: Mapping[datetime, int], default: int, first: date,
                  last: date) -> dict[date, int]:
    """Places offered per day: each slot of the calendar at its capacity — the slot row's when it has been
    booked at least once (`capacities`, by start), else the point's current one."""
    places: dict[date, int] = defaultdict(int)
    for slot in calendar.slots(first, last):
        places[calendar.local_day(slot.starts_at)] += capacities.get(slot.starts_at, default)
    return dict(places)


def aggregate(first: date, last: date, zone: str, reservations: Iterable[ReservationFact],
              selections: Iterable[SelectionFact], bookings: Iterable[BookingFact] = (),
              places: Mapping[tuple[date, str], int] | None = None) -> dict:
    """The figures of the days from `first` to `last` (both included, local days in `zone`). Each fact counts
    on the local day of its own moment: a reservation when placed and again when closed, a selection when asked
    and when prepared; moments outside the range count nowhere. `places` maps (day, pickup point) to the places
    its slots offered; bookings count on the day their slot starts."""
    tz = ZoneInfo(zone)

    def day_of(moment: datetime | None) -> date | None:
        if moment is None:
            return None
        day = moment.astimezone(tz).date()
        return day if first <= day <= last else None

    tallies: dict[tuple[date, str, str], _Tally] = defaultdict(_Tally)
    for r in reservations:
        if (day := day_of(r.placed_at)) is not None:
            tallies[day, r.pickup_point, r.channel].counts["reservations_placed"] += 1
        if r.status not in domain.PICKUP_OUTCOMES or (day := day_of(r.closed_at)) is None:
            continue
        tally = tallies[day, r.pickup_point, r.channel]
        if r.status == "expired":
            tally.counts["no_shows"] += 1
            continue
        tally.counts["collections"] += 1
        if r.arrived_at is not None:
            tally.wait_seconds.append((r.closed_at - r.arrived_at).total_seconds())
    for s in selections:
        if (day := day_of(s.requested_at)) is not None:
            tallies[day, s.pickup_point, s.channel].counts["selections_asked"] += 1
        if s.status not in PREPARED or (day := day_of(s.prepared_at)) is None:
            continue
        tally = tallies[day, s.pickup_point, s.channel]
        tally.counts["selections_prepared"] += 1
        tally.counts["selections_nothing_available"] += int(s.status == "nothing_available")
        tally.prepare_minutes.append((s.prepared_at - s.requested_at).total_seconds() / 60)

    rows = [{"day": day, "pickup_point": point, "channel": channel, **tally.counts,
             "median_prepare_minutes": _median(tally.prepare_minutes),
             "median_wait_seconds": _median(tally.wait_seconds)}
            for (day, point, channel), tally in sorted(tallies.items())]

    booked: dict[tuple[date, str], int] = defaultdict(int)
    for b in bookings:
        if (day := day_of(b.starts_at)) is not None:
            booked[day, b.pickup_point] += 1
    offered = {key: n for key, n in (places or {}).items() if n and first <= key[0] <= last}
    slots = [{"day": day, "pickup_point": point, "places": offered.get((day, point), 0),
              "booked": booked.get((day, point), 0),
              "occupancy": _ratio(booked.get((day, point), 0), offered.get((day, point), 0))}
             for day, point in sorted(offered.keys() | booked.keys())]

    totals: dict = {name: sum(row[name] for row in rows) for name in COUNTERS}
    totals["median_prepare_minutes"] = _median([m for t in tallies.values() for m in t.prepare_minutes])
    totals["median_wait_seconds"] = _median([w for t in tallies.values() for w in t.wait_seconds])
    totals["places"] = sum(s["places"] for s in slots)
    totals["booked"] = sum(s["booked"] for s in slots)
    totals["occupancy"] = _ratio(totals["booked"], totals["places"])
    return {"first": first, "last": last, "rows": rows, "slots": slots, "totals": totals}


def report(session: Session, policy: Policy, first: date, last: date) -> dict:
    """The figures of a range of days (at most a year), read inside the caller's transaction."""
    check_range(first, last, max_days=MAX_DAYS)

    def within(column):  # the range's local days
        return during(column, first, last, policy.tz)

    reservations = [ReservationFact(*row) for row in session.execute(select(
        Reservation.pickup_point_id, Reservation.channel, Reservation.status, Reservation.placed_at,
        Reservation.closed_at, Reservation.arrived_at).where(or_(
            within(Reservation.placed_at),
            and_(Reservation.status.in_(domain.PICKUP_OUTCOMES), within(Reservation.closed_at))))).all()]
    selections = [SelectionFact(*row) for row in session.execute(select(
        Selection.pickup_point_id, Selection.channel, Selection.status, Selection.requested_at,
        Selection.prepared_at).where(or_(
            within(Selection.requested_at), and_(Selection.status.in_(PREPARED), within(Selection.prepared_at)))))
        .all()]

    # Slots: counters and libraries only (a bibliobus stop has visits, not slots).
    points = session.scalars(select(PickupPoint).where(PickupPoint.active, PickupPoint.kind != "bibliobus_stop")
                             .order_by(PickupPoint.id)).all()
    ids = [p.id for p in points]
    capacities: dict[str, dict[datetime, int]] = defaultdict(dict)
    for point_id, starts_at, capacity in session.execute(select(
            PickupSlot.pickup_point_id, PickupSlot.starts_at, PickupSlot.capacity).where(
            PickupSlot.pickup_point_id.in_(ids), within(PickupSlot.starts_at))):
        capacities[point_id][starts_at] = capacity
    places: dict[tuple[date, str], int] = {}
    for point in points:
        calendar = calendar_of(session, point, policy, since=first)
        by_day = places_by_day(calendar, capacities[point.id], capacity_of(point, policy), first, last)
        places.update({(day, point.id): n for day, n in by_day.items()})
    bookings = [BookingFact(*row) for row in session.execute(select(
        Appointment.pickup_point_id, Appointment.starts_at).where(
        Appointment.pickup_point_id.in_(ids), Appointment.status.in_(domain.KEPT_APPOINTMENTS),
        within(Appointment.starts_at)))]
    return aggregate(first, last, policy.zone, reservations, selections, bookings, places)
