"""Reservations' circulation policy, read once from the environment."""

from typing import Any
from zoneinfo import ZoneInfo

from services.common.settings import Setting, Settings, setting
from services.reservations.domain import FinePolicy, Quota, parse_material_limits, parse_steps
from services.reservations.opening_days import parse_ranges

SETTINGS = Settings(
    "reservations",
    Setting("MAX_DOCUMENTS_PER_CARD", 10, int, "the quota: copies a card may hold across open reservations and loans"),
    Setting("MAX_BY_MATERIAL", "dvd:3", str, "the quota per material (`material:count,…`)"),
    Setting("PICKUP_DEADLINE_DAYS", 10, int,
            "how long a ready reservation waits on the hold shelf (to closing time of an opening day)"),
    Setting("LOAN_DAYS", 28, int, "the loan period (to closing time of an opening day)"),
    Setting("FINE_CENTS_PER_DAY", 20, int, "the fine per overdue day (0 allowed)"),
    Setting("FINE_CAP_CENTS", 500, int, "the fines' cap per loan"),
    Setting("REMINDER_STEPS_DAYS", "1,7,21", str, "`loan_overdue` once per loan at each of these days overdue"),
    Setting("EXPIRY_CHECK_SECONDS", 60.0, float, "how often uncollected reservations past their deadline expire"),
    Setting("OVERDUE_CHECK_SECONDS", 300.0, float, "how often overdue loans are reminded"),
    Setting("GRACE_DAYS_AFTER_SUSPENSION", 14, int, "days without reminders or fines after a suspension ends"),
    Setting("OVERDUE_REMINDERS_PER_RUN", 200, int, "overdue reminders sent per run at most"),
    Setting("OPENING_WEEKDAYS", "2,3,4,5,6", str, "the network's opening weekdays (1 = Monday)"),
    Setting("DRIVE_OPENING_HOURS", "10:00-12:30,14:00-18:00", str,
            "drive hours, on the opening weekdays, of a pickup point without hours of its own"),
    Setting("SLOT_MINUTES", 15, int, "appointment slots' length, unless a pickup point sets its own"),
    Setting("SLOT_CAPACITY", 3, int, "patrons per appointment slot, unless a pickup point sets its own"),
)


class Policy:
    def __init__(self, config: Any) -> None:
        self.quota = Quota(max_items=setting(config, "MAX_DOCUMENTS_PER_CARD"),
                           max_by_material=parse_material_limits(setting(config, "MAX_BY_MATERIAL")))
        self.pickup_days = setting(config, "PICKUP_DEADLINE_DAYS")
        self.loan_days = setting(config, "LOAN_DAYS")
        self.fines = FinePolicy(cents_per_day=setting(config, "FINE_CENTS_PER_DAY"),
                                cap_cents=setting(config, "FINE_CAP_CENTS"))
        self.reminder_steps = parse_steps(setting(config, "REMINDER_STEPS_DAYS"))
        self.grace_days = setting(config, "GRACE_DAYS_AFTER_SUSPENSION")
        self.reminders_per_run = setting(config, "OVERDUE_REMINDERS_PER_RUN")
        # The days the network opens (1 = Monday), public holidays aside.
        weekdays = setting(config, "OPENING_WEEKDAYS")
        self.opening_weekdays = frozenset(int(d) for d in weekdays.split(",") if d.strip())
        # The drive calendar of a pickup point that has no hours of its own, and its appointment slots.
        ranges = [r.strip() for r in setting(config, "DRIVE_OPENING_HOURS").split(",")]
        self.default_hours = {day: parse_ranges(ranges) for day in self.opening_weekdays}
        self.zone = setting(config, "DRIVE_TIMEZONE")
        self.tz = ZoneInfo(self.zone)
        self.slot_minutes = setting(config, "SLOT_MINUTES")
        self.slot_capacity = setting(config, "SLOT_CAPACITY")

