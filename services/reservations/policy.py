"""Reservations' circulation policy, read once from the environment."""

from typing import Any
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider

from services.common.settings import setting
from services.reservations.domain import FinePolicy, Quota, parse_material_limits, parse_steps
from services.reservations.opening_days import parse_ranges


class Policy:
    def __init__(self, config: Any) -> None:
        self.quota = Quota(max_items=setting(config, "MAX_DOCUMENTS_PER_CARD", 10, int),
                           max_by_material=parse_material_limits(setting(config, "MAX_BY_MATERIAL", "dvd:3")))
        self.pickup_days = setting(config, "PICKUP_DEADLINE_DAYS", 10, int)
        self.loan_days = setting(config, "LOAN_DAYS", 28, int)
        self.fines = FinePolicy(cents_per_day=setting(config, "FINE_CENTS_PER_DAY", 20, int),
                                cap_cents=setting(config, "FINE_CAP_CENTS", 500, int))
        self.reminder_steps = parse_steps(setting(config, "REMINDER_STEPS_DAYS", "1,7,21"))
        self.grace_days = setting(config, "GRACE_DAYS_AFTER_SUSPENSION", 14, int)
        self.reminders_per_run = setting(config, "OVERDUE_REMINDERS_PER_RUN", 200, int)
        # The days the network opens (1 = Monday), public holidays aside.
        weekdays = setting(config, "OPENING_WEEKDAYS", "2,3,4,5,6")
        self.opening_weekdays = frozenset(int(d) for d in weekdays.split(",") if d.strip())
        # The drive calendar of a pickup point that has no hours of its own, and its appointment slots.
        ranges = [r.strip() for r in setting(config, "DRIVE_OPENING_HOURS", "10:00-12:30,14:00-18:00").split(",")]
        self.default_hours = {day: parse_ranges(ranges) for day in self.opening_weekdays}
        self.zone = setting(config, "DRIVE_TIMEZONE", "Europe/Paris")
        self.tz = ZoneInfo(self.zone)
        self.slot_minutes = setting(config, "SLOT_MINUTES", 15, int)
        self.slot_capacity = setting(config, "SLOT_CAPACITY", 3, int)


class ReservationsPolicy(DependencyProvider):
    def setup(self) -> None:
        self.policy = Policy(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> Policy:
        return self.policy
