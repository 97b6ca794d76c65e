"""Inventory's configuration (sites, quarantine lengths), read once from the environment."""

from datetime import datetime, timedelta
from typing import Any

from nameko.extensions import DependencyProvider

from services.common.errors import Invalid
from services.common.settings import setting
from services.inventory.domain import QuarantinePolicy, parse_material_hours


class Policy:
    def __init__(self, config: Any) -> None:
        self.sites = [s.strip() for s in setting(config, "SITES", "central,neighbourhood").split(",") if s.strip()]
        plastic = setting(config, "QUARANTINE_HOURS_PLASTIC", None, float)
        self.quarantine = QuarantinePolicy(
            default_hours=setting(config, "QUARANTINE_HOURS", 72.0, float),
            by_material=parse_material_hours(setting(config, "QUARANTINE_HOURS_BY_MATERIAL", "dvd:120,cd:120")),
            plastic_cover_hours=plastic if plastic is not None else 120.0,
        )
        self.max_backdate_days = setting(config, "CHECKIN_MAX_BACKDATE_DAYS", 30, int)

    def returned_at(self, declared: datetime | None, now: datetime) -> datetime:
        """A check-in may be backdated to the day the copy was dropped in the return box, not later than now."""
        if declared is None:
            return now
        if declared > now:
            raise Invalid("returned_at is in the future", field="returned_at")
        if declared < now - timedelta(days=self.max_backdate_days):
            raise Invalid(f"returned_at is more than {self.max_backdate_days} days ago", field="returned_at")
        return declared


class InventoryPolicy(DependencyProvider):
    def setup(self) -> None:
        self.policy = Policy(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> Policy:
        return self.policy
