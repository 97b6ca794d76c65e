"""Reservations' rules: the life of a reservation and the status sets the SQL states them with, quotas,
appointments and arrivals, selections, deadlines, due dates, fines, reminders, and the order in which staff
walk the shelves. Plain functions on plain values: no nameko, no session."""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Protocol, TypeVar

from services.common.errors import Conflict, Invalid
from services.reservations.continuity import Suspension, overdue_days

BIBLIOBUS_STOP = "bibliobus_stop"  # the kind of pickup point bibliobus's stops are

# Where a reservation may go from each status. Final: collected, cancelled, expired.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "waiting_for_stop": frozenset({"placed", "cancelled"}),  # at a closed bibliobus stop, until it opens
    "placed": frozenset({"allocated", "cancelled"}),
    "allocated": frozenset({"ready", "cancelled"}),
    "ready": frozenset({"collected", "cancelled", "expired"}),
    "collected": frozenset(),
    "cancelled": frozenset(),
    "expired": frozenset(),
}
OPEN_STATUSES = ("waiting_for_stop", "placed", "allocated", "ready")
OPEN_LINE_STATUSES = ("pending", "allocated", "waitlisted")
# A line that still waits for its copy: inventory's allocation may fill it; only a pending one is waitlisted.
WAITING_LINE_STATUSES = ("pending", "waitlisted")
WAITLISTABLE_LINE_STATUSES = ("pending",)
# Open reservations whose open lines hold a copy or a waitlist place in inventory (at a closed stop: nothing yet).
HOLDING_STATUSES = ("placed", "allocated", "ready")
# What `drive check --fix` says again of a reservation so that inventory catches up: the event that put it where
# it is. Allocated or ready ones are not repaired by an event: their copies were announced as theirs.
REANNOUNCED = {"placed": "reservation_placed", "cancelled": "reservation_cancelled",
               "expired": "reservation_expired"}




def sources(target: str) -> tuple[str, ...]:
    """The statuses a reservation may become `target` from: what a conditional update's WHERE states."""
    return tuple(status for status, targets in TRANSITIONS.items() if target in targets)


# The transitions made by conditional updates (inventory's answer, the expiry timer) ask `TRANSITIONS` too.
ALLOCATABLE = sources("allocated")  # placed: waits for inventory's answer
EXPIRABLE = sources("expired")  # ready: on the hold shelf, until its pickup deadline
AWAITING_STOP = sources("placed")  # at a closed bibliobus stop, released when it opens
# Staff claim and prepare a reservation while its copies are being found or pulled, before the hold shelf.
TO_PREPARE = ("placed", "allocated")
# A reservation that took a place in a visit's vehicle (and keeps it once collected).
IN_A_VISIT = ("ready", "collected")
# How a ready reservation ends: handed over, or a no-show.
PICKUP_OUTCOMES = ("collected", "expired")


def ensure_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(f"a reservation that is {current} cannot become {target}", status=current)


def channel_for(asked: str | None, by_staff: bool) -> str:
    """A patron's own request comes from the web; staff say where it came from (the phone by default)."""
    return (asked or "phone") if by_staff else "web"


def initial_status(point_kind: str, point_enabled: bool) -> str:
    """A reservation at a closed bibliobus stop is taken (it is demand) but waits for the stop to open."""
    return "waiting_for_stop" if point_kind == BIBLIOBUS_STOP and not point_enabled else "placed"


class Arriving(Protocol):
    arrives_at: datetime


V = TypeVar("V", bound=Arriving)


def choose_visit(visits: Iterable[V], taken: Mapping[datetime, int], capacity: int) -> V:
    """The first coming visit whose vehicle still has room (`taken`: reservations per visit, by arrival)."""
    for visit in visits:
        if taken.get(visit.arrives_at, 0) < capacity:
            return visit
    raise Conflict("every visit of the coming weeks is full at this stop", field="pickup_point")


def lines_waiting(line_statuses: Iterable[str]) -> int:
    return sum(s in WAITING_LINE_STATUSES for s in line_statuses)


def ensure_ready_to_prepare(status: str, line_statuses: Sequence[str]) -> None:
    """Ready means every line has its copy set aside: nothing still pending or waitlisted."""
    ensure_transition(status, "ready")
    waiting = lines_waiting(line_statuses)
    if waiting:
        raise Conflict(f"{waiting} line(s) still wait for a copy", status=status)


def ensure_free_to_prepare(claimed_by: str | None, subject: str) -> None:
    """Whoever claimed a reservation or a selection prepares it; nobody else."""
    if claimed_by and claimed_by != subject:
        raise Conflict(f"{claimed_by} is preparing this one", claimed_by=claimed_by)


@dataclass(frozen=True)
class Quota:
    max_items: int = 10
    max_by_material: Mapping[str, int] = field(default_factory=lambda: {"dvd": 3})

    def check(self, held: Iterable[str], wanted: Sequence[str]) -> None:
        """`held`: materials of the card's open reservation lines and loans; `wanted`: the new lines."""
        held = list(held)
        total = len(held) + len(wanted)
        if total > self.max_items:
            raise Invalid(f"this would make {total} documents on the card; the limit is {self.max_items}",
                          field="titles", limit=self.max_items, held=len(held))
        for material, limit in self.max_by_material.items():
            count = held.count(material) + list(wanted).count(material)
            if count > limit:
                raise Invalid(f"this would make {count} {material} on the card; the limit is {limit}",
                              field="titles", material=material, limit=limit)

    def left(self, held: int) -> int:
        """Documents the card may still ask for, holding `held` (reserved, asked in a selection, on loan)."""
        return max(self.max_items - held, 0)

    def check_selection(self, held: int, documents: int) -> None:
        """A selection asks for `documents` of any material: only the card's total limit applies."""
        if held + documents > self.max_items:
            raise Invalid(f"{documents} documents is more than the card's quota allows now ({self.left(held)} "
                          f"left of {self.max_items})", field="documents", quota_left=self.left(held))


def parse_material_limits(text: str) -> dict[str, int]:
    """`"dvd:3,cd:5"` → {"dvd": 3, "cd": 5}."""
    limits = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        material, _, value = part.partition(":")
        limits[material.strip()] = int(value)
    return limits


# --- appointments and arrivals at the counter ----------------------------------------------------------

# An appointment that holds its place, or held it until the hand-over.
KEPT_APPOINTMENTS = ("booked", "honoured")


def ensure_has_slots(point_kind: str) -> None:
    if point_kind == BIBLIOBUS_STOP:
        raise Invalid("a bibliobus stop has visits, not counter slots", field="pickup_point")


def ensure_bookable(status: str, point_kind: str) -> None:
    """A slot is booked for a reservation on the hold shelf, at a counter (a stop has visits)."""
    if status != "ready":
        raise Conflict(f"a reservation that is {status} cannot be booked: book once it is ready", status=status)
    ensure_has_slots(point_kind)


def ensure_slot_in_time(starts_at: datetime, now: datetime, pickup_deadline: datetime | None) -> None:
    """A slot not yet started, and before the reservation stops waiting."""
    if starts_at <= now:
        raise Invalid("this slot has already started", field="starts_at")
    if pickup_deadline and starts_at >= pickup_deadline:
        raise Invalid(f"the reservation waits only until {pickup_deadline.isoformat()}", field="starts_at")


def ensure_can_arrive(status: str) -> None:
    """"I'm here" is for an open reservation (before it is ready too: the day sheet flags it)."""
    if status not in OPEN_STATUSES:
        raise Conflict(f"a reservation that is {status} has nothing to hand over", status=status)


class LinkClosed(Conflict):
    code = "link_closed"


def ensure_link_open(status: str, pickup_deadline: datetime | None, now: datetime) -> None:
    """A patron link opens its reservation while it waits to be collected: not once it is closed, nor past its
    pickup deadline (the current one: a closure may have moved it since the message was sent)."""
    if status not in OPEN_STATUSES:
        raise LinkClosed(f"this reservation is {status}: its link no longer opens it", status=status)
    if pickup_deadline is not None and pickup_deadline < now:
        raise LinkClosed(f"this reservation waited until {pickup_deadline.isoformat()}: its link no longer opens it",
                         status=status, pickup_deadline=pickup_deadline.isoformat())


def arrival_is_news(previous: datetime | None, now: datetime, tz: tzinfo) -> bool:
    """Said twice the same local day, it is one arrival."""
    return previous is None or previous.astimezone(tz).date() != now.astimezone(tz).date()


# --- selections -----------------------------------------------------------------------------------------

SELECTION_OPEN = ("requested",)  # staff have it to prepare; it holds its places in the quota
SELECTION_PREPARED = ("prepared", "nothing_available")  # staff have dealt with it, whatever they found
YOUTH_AGES = (0, 18)


def check_audience(audience: str, age_min: int | None, age_max: int | None) -> None:
    """Youth selections say for what ages (0–18); adult ones do not."""
    if audience == "adult":
        if age_min is not None or age_max is not None:
            raise Invalid("an age range is for youth selections", field="age_min")
        return
    if age_min is None or age_max is None:
        raise Invalid("a youth selection needs an age range (age_min and age_max)", field="age_min")
    if not (YOUTH_AGES[0] <= age_min <= YOUTH_AGES[1] and YOUTH_AGES[0] <= age_max <= YOUTH_AGES[1]):
        raise Invalid("youth ages are between 0 and 18", field="age_min")
    if age_max < age_min:
        raise Invalid(f"the age range is upside down: {age_min} to {age_max}", field="age_max")


def ensure_selection_open(status: str) -> None:
    if status not in SELECTION_OPEN:
        raise Conflict(f"this selection is already {status}", status=status)


def check_choice(title_ids: Sequence[str], documents: int, material_of: Mapping[str, str],
                 kinds: Sequence[str]) -> None:
    """Staff choose at most the documents asked, of the kinds asked (`material_of`: the known titles')."""
    if len(title_ids) > documents:
        raise Invalid(f"{len(title_ids)} titles chosen for a selection of {documents}", field="titles")
    off = [t for t in title_ids if t in material_of and material_of[t] not in kinds]
    if off:
        raise Invalid(f"not among the kinds asked ({', '.join(kinds)}): {', '.join(off)}", field="titles")


def hold_shelf_for(card: str) -> str:
    """Where a ready reservation waits when staff do not say: holds are shelved by the last two digits of the
    card, as at most counters (staff find them without a name, and the patron reads them off their card)."""
    return card[-2:].rjust(2, "0")


def days_overdue(due_at: datetime, until: datetime, suspensions: Iterable[Suspension] = (),
                 grace_days: int = 0) -> int:
    """Whole days past the due date (a copy dropped in the return box counts from the day it was dropped),
    leaving out days inside a suspension of fines and reminders and the grace days after it."""
    return overdue_days(due_at, until, suspensions, grace_days)


@dataclass(frozen=True)
class FinePolicy:
    cents_per_day: int = 20
    cap_cents: int = 500

    def fine(self, due_at: datetime, until: datetime, suspensions: Iterable[Suspension] = (),
             grace_days: int = 0) -> int:
        return min(days_overdue(due_at, until, suspensions, grace_days) * self.cents_per_day, self.cap_cents)


def reminder_step(overdue_days: int, steps: Sequence[int]) -> int:
    """How many reminder steps an overdue loan has reached (steps in days overdue, e.g. 1, 7, 21)."""
    return sum(overdue_days >= s for s in steps)


def parse_steps(text: str) -> list[int]:
    steps = sorted(int(p) for p in (text or "").split(",") if p.strip())
    if not steps or steps[0] < 1:
        raise ValueError("reminder steps are whole days overdue, the first at least 1")
    return steps


def _natural(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", text or "") if p)


def walk_order(line: Mapping[str, object], pickup_site: str) -> tuple:
    """Copies on this site first, shelf by shelf (natural order of shelf marks: 'R 9' before 'R 10'), then
    the copies to bring over from other sites, grouped by site."""
    site = str(line.get("site") or "")
    return (site != pickup_site, site, _natural(str(line.get("shelf_mark") or "")), str(line.get("barcode")))
