"""Reservations' rules: the life of a reservation, quotas, deadlines, due dates, fines, reminders, and the
order in which staff walk the shelves. Plain functions on plain values: no nameko, no session."""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from services.common.errors import Conflict, Invalid
from services.reservations.continuity import Suspension, overdue_days

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
# Open reservations whose open lines hold a copy or a waitlist place in inventory (at a closed stop: nothing yet).
HOLDING_STATUSES = ("placed", "allocated", "ready")
# What `drive check --fix` says again of a reservation so that inventory catches up: the event that put it where
# it is. Allocated or ready ones are not repaired by an event: their copies were announced as theirs.
REANNOUNCED = {"placed": "reservation_placed", "cancelled": "reservation_cancelled",
               "expired": "reservation_expired"}


def ensure_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(f"a reservation that is {current} cannot become {target}", status=current)


def channel_for(asked: str | None, by_staff: bool) -> str:
    """A patron's own request comes from the web; staff say where it came from (the phone by default)."""
    return (asked or "phone") if by_staff else "web"


def initial_status(point_kind: str, point_enabled: bool) -> str:
    """A reservation at a closed bibliobus stop is taken (it is demand) but waits for the stop to open."""
    return "waiting_for_stop" if point_kind == "bibliobus_stop" and not point_enabled else "placed"


class Arriving(Protocol):
    arrives_at: datetime


V = TypeVar("V", bound=Arriving)


def choose_visit(visits: Iterable[V], taken: Mapping[datetime, int], capacity: int) -> V:
    """The first coming visit whose vehicle still has room (`taken`: reservations per visit, by arrival)."""
    for visit in visits:
        if taken.get(visit.arrives_at, 0) < capacity:
            return visit
    raise Conflict("every visit of the coming weeks is full at this stop", field="pickup_point")


def ensure_ready_to_prepare(status: str, line_statuses: Sequence[str]) -> None:
    """Ready means every line has its copy set aside: nothing still pending or waitlisted."""
    ensure_transition(status, "ready")
    waiting = sum(s in ("pending", "waitlisted") for s in line_statuses)
    if waiting:
        raise Conflict(f"{waiting} line(s) still wait for a copy", status=status)


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


def parse_material_limits(text: str) -> dict[str, int]:
    """`"dvd:3,cd:5"` → {"dvd": 3, "cd": 5}."""
    limits = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        material, _, value = part.partition(":")
        limits[material.strip()] = int(value)
    return limits


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
