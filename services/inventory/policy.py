"""Inventory's configuration (sites, quarantine lengths), read once from the environment."""

from datetime import datetime, timedelta
from typing import Any

from services.common.errors import Invalid
from services.common.settings import Setting, Settings, setting
from services.inventory.domain import QuarantinePolicy, parse_material_hours

SETTINGS = Settings(
    "inventory",
    Setting("SITES", "central,neighbourhood", str, "the network's sites (homes of copies)"),
    Setting("QUARANTINE_HOURS", 72.0, float, "quarantine after a return"),
    Setting("QUARANTINE_HOURS_BY_MATERIAL", "dvd:120,cd:120", str, "quarantine per material (`material:hours,…`)"),
    Setting("QUARANTINE_HOURS_PLASTIC", 120.0, float, "quarantine of a copy with a plastic cover"),
    Setting("CHECKIN_MAX_BACKDATE_DAYS", 30, int, "how far a check-in may be backdated (the return box)"),
    Setting("QUARANTINE_CHECK_SECONDS", 30.0, float, "how often copies are released from quarantine"),
)


class Policy:
    def __init__(self, config: Any) -> None:
        self.sites = [s.strip() for s in setting(config, "SITES").split(",") if s.strip()]
        self.quarantine = QuarantinePolicy(
            default_hours=setting(config, "QUARANTINE_HOURS"),
            by_material=parse_material_hours(setting(config, "QUARANTINE_HOURS_BY_MATERIAL")),
            plastic_cover_hours=setting(config, "QUARANTINE_HOURS_PLASTIC"),
        )
        self.max_backdate_days = setting(config, "CHECKIN_MAX_BACKDATE_DAYS")

    def returned_at(self, declared: datetime | None, now: datetime) -> datetime:
        """A check-in may be backdated to the day the copy was dropped in the return box, not later than now."""
        if declared is None:
            return now
        if declared > now:
            raise Invalid("returned_at is in the future", field="returned_at")
        if declared < now - timedelta(days=self.max_backdate_days):
            raise Invalid(f"returned_at is more than {self.max_backdate_days} days ago", field="returned_at")
        return declared

