"""Bibliobus configuration (default thresholds, window, the tour's time zone), read once, checked at start."""

from typing import Any
from zoneinfo import ZoneInfo

from services.bibliobus.domain import Thresholds
from services.common.settings import Setting, Settings, setting

SETTINGS = Settings(
    "bibliobus",
    Setting("STOP_ENABLE_THRESHOLD", 5, int, "the rule's default: demand that opens a stop, until an analyst sets it"),
    Setting("STOP_DISABLE_THRESHOLD", 2, int, "the rule's default: demand under which a stop closes"),
    Setting("STOP_CONSECUTIVE_EVALUATIONS", 3, int, "the rule's default: rounds in a row before a stop switches"),
    Setting("DEMAND_WINDOW_DAYS", 14, int, "demand's rolling window"),
    Setting("DEMAND_EVALUATION_SECONDS", 300.0, float, "how often the rule's evaluation round runs"),
    Setting("TOUR_TIMEZONE", "Europe/Paris", str, "the zone of the visits' local times"),
    Setting("BIBLIOBUS_SITE", "central", str, "the site whose copies the vehicle carries"),
)


class Policy:
    def __init__(self, config: Any) -> None:
        # The network's defaults until an analyst sets others (PUT /thresholds); bad values stop the start.
        self.thresholds = Thresholds(enable=setting(config, "STOP_ENABLE_THRESHOLD"),
                                     disable=setting(config, "STOP_DISABLE_THRESHOLD"),
                                     consecutive=setting(config, "STOP_CONSECUTIVE_EVALUATIONS")).check()
        self.window_days = setting(config, "DEMAND_WINDOW_DAYS")
        self.timezone = setting(config, "TOUR_TIMEZONE")
        ZoneInfo(self.timezone)
        # Copies for the vehicle come from the central library, where its tour starts.
        self.site = setting(config, "BIBLIOBUS_SITE")
        self.round_seconds = setting(config, "DEMAND_EVALUATION_SECONDS")

