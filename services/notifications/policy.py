"""Notifications' configuration: channels, templates, quiet hours, attempts — read once, in setup()."""

from typing import Any

from nameko.extensions import DependencyProvider

from services.common.settings import setting
from services.notifications.channels import Channel, build_channels
from services.notifications.domain import QuietHours, parse_clock
from services.notifications.messages import PATRON_APP_URL, Templates


class PostOffice:
    def __init__(self, config: Any) -> None:
        self.zone = setting(config, "NOTIFY_TIMEZONE", "Europe/Paris")
        self.quiet = QuietHours(parse_clock(setting(config, "SMS_QUIET_START", "20:00")),
                                parse_clock(setting(config, "SMS_QUIET_END", "08:00")), self.zone)
        self.templates = Templates(setting(config, "NOTIFY_TEMPLATES_DIR"), self.zone,
                                   setting(config, "PATRON_APP_URL", PATRON_APP_URL))
        self.channels: dict[str, Channel] = build_channels(config)
        self.max_attempts = setting(config, "NOTIFY_MAX_ATTEMPTS", 6, int)
        self.retry_base_seconds = setting(config, "NOTIFY_RETRY_BASE_SECONDS", 30.0, float)
        self.batch = setting(config, "NOTIFY_BATCH", 200, int)
        self.concurrency = setting(config, "NOTIFY_CONCURRENCY", 10, int)
        self.send_max_seconds = setting(config, "NOTIFY_SEND_MAX_SECONDS", 10.0, float)


class PostOfficeProvider(DependencyProvider):
    def setup(self) -> None:
        self.office = PostOffice(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> PostOffice:
        return self.office
