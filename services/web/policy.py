"""The web service's settings: what signs its cookies, where reservations answers, the pace of the live boards'
streams. Its listen address, WEB_ADDRESS, is nameko's WEB_SERVER_ADDRESS: in its config.yaml, as the others'."""

from typing import Any

from services.common.deployment import DEV_SESSION_SECRET
from services.common.settings import Setting, Settings, setting

SETTINGS = Settings(
    "web",
    Setting("WEB_SESSION_SECRET", DEV_SESSION_SECRET, str,
            "the key that signs the pages' session cookies and their CSRF tokens (the embedded default is for "
            "development only; elsewhere 32 characters at least)"),
    Setting("RESERVATIONS_URL", "http://127.0.0.1:8001", str,
            "the reservations API the pages read and act through, with the signed-in person's token"),
    Setting("BOARD_HEARTBEAT_SECONDS", 15.0, float,
            "how often an open board's stream sends a comment line, so proxies keep it and browsers see it alive"),
    Setting("BOARD_RETRY_MS", 2000, int,
            "the `retry:` a board's stream tells the browser: its pause before reconnecting"),
    Setting("WEB_SECURE_COOKIES", False, bool,
            "mark the session cookie `Secure` (set it when the pages are served over HTTPS)"),
)


class Policy:
    def __init__(self, config: Any) -> None:
        self.session_secret: bytes = setting(config, "WEB_SESSION_SECRET").encode()
        self.reservations_url: str = setting(config, "RESERVATIONS_URL").rstrip("/")
        self.heartbeat_seconds: float = setting(config, "BOARD_HEARTBEAT_SECONDS")
        self.retry_ms: int = setting(config, "BOARD_RETRY_MS")
        self.secure_cookies: bool = setting(config, "WEB_SECURE_COOKIES")
