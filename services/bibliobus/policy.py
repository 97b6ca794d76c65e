"""Bibliobus configuration (default thresholds, window, the tour's time zone), read once, checked at start."""

from typing import Any
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider

from services.bibliobus.domain import Thresholds
from services.common.settings import setting


class Policy:
    def __init__(self, config: Any) -> None:
        # The network's defaults until an analyst sets others (PUT /thresholds); bad values stop the start.
        self.thresholds = Thresholds(enable=setting(config, "STOP_ENABLE_THRESHOLD", 5, int),
                                     disable=setting(config, "STOP_DISABLE_THRESHOLD", 2, int),
                                     consecutive=setting(config, "STOP_CONSECUTIVE_EVALUATIONS", 3, int)).check()
        self.window_days = setting(config, "DEMAND_WINDOW_DAYS", 14, int)
        self.timezone = setting(config, "TOUR_TIMEZONE", "Europe/Paris")
        ZoneInfo(self.timezone)
        # Copies for the vehicle come from the central library, where its tour starts.
        self.site = setting(config, "BIBLIOBUS_SITE", "central")
        self.round_seconds = setting(config, "DEMAND_EVALUATION_SECONDS", 300.0, float)


class BibliobusPolicy(DependencyProvider):
    def setup(self) -> None:
        self.policy = Policy(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> Policy:
        return self.policy
