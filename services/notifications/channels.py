"""Where messages go: e-mail over SMTP, SMS through an HTTP gateway, or a file sink (the embedded default).
Each channel raises `TransientFailure` (try again later) or `PermanentDeliveryFailure` (give up) and nothing else."""

import json
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import requests

from services.common.settings import setting


class TransientFailure(Exception):
    pass


class PermanentDeliveryFailure(Exception):
    pass


class Channel(Protocol):
    def send(self, delivery_id: str, recipient: str, subject: str | None, body: str) -> None: ...


class SmtpEmail:
    def __init__(self, host: str, port: int, sender: str, starttls: bool, user: str | None, password: str | None,
                 timeout: float = 10) -> None:
        self.host, self.port, self.sender, self.starttls = host, port, sender, starttls
        self.user, self.password, self.timeout = user, password, timeout

    def send(self, delivery_id: str, recipient: str, subject: str | None, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, recipient, subject or ""
        # A stable Message-ID: if a crash makes us send twice, mail systems can tell it is one message.
        message["Message-ID"] = f"<{delivery_id}@drive.notifications>"
        message.set_content(body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise (TransientFailure if all(400 <= c < 500 for c in codes) else PermanentDeliveryFailure)(
                f"recipient refused: {codes}") from exc
        except smtplib.SMTPResponseException as exc:
            kind = TransientFailure if 400 <= exc.smtp_code < 500 else PermanentDeliveryFailure
            raise kind(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise TransientFailure(f"SMTP unreachable: {exc!r}") from exc


class JsonSmsGateway:
    """A generic JSON gateway: POST {"to", "text", "reference"} with a bearer token."""

    def __init__(self, url: str, token: str | None, timeout: float = 10) -> None:
        self.url, self.token, self.timeout = url, token, timeout

    def send(self, delivery_id: str, recipient: str, subject: str | None, body: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            answer = requests.post(self.url, json={"to": recipient, "text": body, "reference": delivery_id},
                                   headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransientFailure(f"SMS gateway unreachable: {exc!r}") from exc
        if answer.status_code >= 500 or answer.status_code == 429:
            raise TransientFailure(f"SMS gateway answered {answer.status_code}")
        if answer.status_code >= 400:
            raise PermanentDeliveryFailure(f"SMS gateway refused: {answer.status_code} {answer.text[:200]}")


class FileSink:
    """One JSON line per message in `<dir>/<channel>.jsonl`: the system runs on a laptop with no mail server."""

    def __init__(self, directory: str, channel: str) -> None:
        self.path = Path(directory) / f"{channel}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, delivery_id: str, recipient: str, subject: str | None, body: str) -> None:
        line = json.dumps({"id": delivery_id, "to": recipient, "subject": subject, "body": body}, ensure_ascii=False)
        with self.path.open("a", encoding="utf-8") as sink:
            sink.write(line + "\n")


def build_channels(config: Any) -> dict[str, Channel]:
    sink_dir = setting(config, "NOTIFY_FILE_SINK_DIR", "var/messages")
    smtp_host = setting(config, "SMTP_HOST")
    email: Channel = SmtpEmail(
        smtp_host, setting(config, "SMTP_PORT", 25, int), setting(config, "NOTIFY_FROM", "drive@bibliotheque.example"),
        setting(config, "SMTP_STARTTLS", False, bool), setting(config, "SMTP_USER"), setting(config, "SMTP_PASSWORD"),
    ) if smtp_host else FileSink(sink_dir, "email")
    gateway = setting(config, "SMS_GATEWAY_URL")
    sms: Channel = (JsonSmsGateway(gateway, setting(config, "SMS_GATEWAY_TOKEN")) if gateway
                    else FileSink(sink_dir, "sms"))
    return {"email": email, "sms": sms}
