"""Reservations' circulation policy, read once from the environment."""

from typing import Any

from nameko.extensions import DependencyProvider

from services.common.settings import setting
from services.reservations.domain import FinePolicy, Quota, parse_material_limits, parse_steps


class Policy:
    def __init__(self, config: Any) -> None:
        self.quota = Quota(max_items=setting(config, "MAX_DOCUMENTS_PER_CARD", 10, int),
                           max_by_material=parse_material_limits(setting(config, "MAX_BY_MATERIAL", "dvd:3")))
        self.pickup_days = setting(config, "PICKUP_DEADLINE_DAYS", 10, int)
        self.loan_days = setting(config, "LOAN_DAYS", 28, int)
        self.fines = FinePolicy(cents_per_day=setting(config, "FINE_CENTS_PER_DAY", 20, int),
                                cap_cents=setting(config, "FINE_CAP_CENTS", 500, int))
        self.reminder_steps = parse_steps(setting(config, "REMINDER_STEPS_DAYS", "1,7,21"))
        self.max_titles = self.quota.max_items


class ReservationsPolicy(DependencyProvider):
    def setup(self) -> None:
        self.policy = Policy(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> Policy:
        return self.policy
