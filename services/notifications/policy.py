"""Notifications' configuration: channels, templates, quiet hours, attempts — read once, in setup()."""

from functools import partial
from typing import Any

from services.common.auth import reservation_link_token
from services.common.settings import Setting, Settings, setting
from services.notifications.channels import Channel, build_channels
from services.notifications.domain import QuietHours, parse_clock
from services.notifications.messages import Templates

SETTINGS = Settings(
    "notifications",
    Setting("SMTP_HOST", None, str, "the SMTP server; without it e-mails go to the file sink"),
    Setting("SMTP_PORT", 25, int, "the SMTP server's port"),
    Setting("SMTP_STARTTLS", False, bool, "STARTTLS before logging in"),
    Setting("SMTP_USER", None, str, "the SMTP login"),
    Setting("SMTP_PASSWORD", None, str, "the SMTP password"),
    Setting("NOTIFY_FROM", "Médiathèque <drive@bibliotheque.example>", str, "the sender of e-mails"),
    Setting("SMS_GATEWAY_URL", None, str, "the SMS gateway (JSON over HTTP); without it SMS go to the file sink"),
    Setting("SMS_GATEWAY_TOKEN", None, str, "the SMS gateway's bearer token"),
    Setting("NOTIFY_FILE_SINK_DIR", "var/messages", str, "where the file sink writes messages"),
    Setting("NOTIFY_TEMPLATES_DIR", None, str, "templates that replace the embedded ones, by name"),
    Setting("PATRON_APP_URL", None, str,
            "the patron's page: the ready message links to it (`/r#<token>`); unset, the web service's (WEB_URL)"),
    Setting("NOTIFY_TIMEZONE", "Europe/Paris", str, "the zone of the times messages show"),
    Setting("SMS_QUIET_START", "20:00", str, "no SMS from this local time…"),
    Setting("SMS_QUIET_END", "08:00", str, "…until this one"),
    Setting("NOTIFY_MAX_ATTEMPTS", 6, int, "attempts to send a message before it is marked failed"),
    Setting("NOTIFY_RETRY_BASE_SECONDS", 30.0, float, "the first pause before a message is tried again (it grows)"),
    Setting("NOTIFY_BATCH", 200, int, "messages claimed per send batch"),
    Setting("NOTIFY_CONCURRENCY", 10, int, "messages of a batch sent at once"),
    Setting("NOTIFY_SEND_SECONDS", 0.5, float, "how often the send round starts"),
    Setting("NOTIFY_SEND_MAX_SECONDS", 10.0, float,
            "a send round goes on while its batches are full, for at most this long (then it starts again at once)"),
    Setting("NOTIFY_SEND_ON_RECORD", True, bool,
            "a send round starts as soon as recorded messages commit, not only every NOTIFY_SEND_SECONDS"),
)


class PostOffice:
    def __init__(self, config: Any) -> None:
        self.zone = setting(config, "NOTIFY_TIMEZONE")
        self.quiet = QuietHours(parse_clock(setting(config, "SMS_QUIET_START")),
                                parse_clock(setting(config, "SMS_QUIET_END")), self.zone)
        self.templates = Templates(setting(config, "NOTIFY_TEMPLATES_DIR"), self.zone,
                                   setting(config, "PATRON_APP_URL") or setting(config, "WEB_URL"),
                                   partial(reservation_link_token, config))
        self.channels: dict[str, Channel] = build_channels(config)
        self.max_attempts = setting(config, "NOTIFY_MAX_ATTEMPTS")
        self.retry_base_seconds = setting(config, "NOTIFY_RETRY_BASE_SECONDS")
        self.batch = setting(config, "NOTIFY_BATCH")
        self.concurrency = setting(config, "NOTIFY_CONCURRENCY")
        self.send_max_seconds = setting(config, "NOTIFY_SEND_MAX_SECONDS")
        self.send_on_record = setting(config, "NOTIFY_SEND_ON_RECORD")

