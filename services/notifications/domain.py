"""Notifications' rules: which events patrons are told of, which channel, when an SMS may go, how long it is,
whether a message still holds or was superseded, whether an amendment is news, whether a message may be resent and
to which address, how long to wait before trying again. Plain functions: no nameko, no session, no network."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_SMS_SEGMENTS = 2
# What patrons are told of (`should_announce` decides on some of them by what the event says).
ANNOUNCED = ("reservation_ready", "items_unavailable", "reservation_expired", "reservation_cancelled",
             "loan_overdue", "due_dates_shifted", "reservation_released_to_allocation", "selection_requested",
             "selection_prepared", "pickup_slot_booked", "pickup_slot_cancelled")
# The status each event of a reservation that notifications hears leaves it in: what `still_holds` decides on.
RESERVATION_STATUS = {"reservation_ready": "ready", "reservation_collected": "collected",
                      "reservation_cancelled": "cancelled", "reservation_expired": "expired"}


def should_announce(event_type: str, data: Mapping[str, Any]) -> bool:
    """A patron is told of a cancellation only when staff made it: they know of their own. An appointment given
    back is news only when the library did it (a day closed, staff): a move is followed by its new booking, and a
    reservation that ended was announced already. An event published again to repair a service (`drive check
    --fix`) is never news."""
    if data.get("reannounced"):
        return False
    if event_type == "reservation_cancelled":
        return data.get("cancelled_by") == "staff"
    if event_type == "pickup_slot_cancelled":
        return data.get("reason") == "drive_closed" or (data.get("reason") == "cancelled"
                                                         and data.get("cancelled_by") == "staff")
    return event_type in ANNOUNCED


def reminders_suspended(continuity: Mapping[str, Any] | None, now: datetime) -> bool:
    """While the library suspends reminders (continuity mode, as `continuity_policy_changed` last said), overdue
    reminders are recorded as suppressed."""
    if not continuity or not continuity.get("suspended"):
        return False
    starts, ends = continuity.get("starts_at"), continuity.get("ends_at")
    return ((starts is None or datetime.fromisoformat(starts) <= now)
            and (ends is None or now < datetime.fromisoformat(ends)))


@dataclass(frozen=True)
class Contact:
    card: str
    email: str | None
    phone: str | None
    preferred_channel: str  # "email" or "sms"
    language: str  # "fr" or "en"
    sms_consent: bool


def channels_for(contact: Contact) -> list[str]:
    """The patron's preferred channel when it can be used, else the other one; none without any address."""
    usable = {"email": bool(contact.email), "sms": bool(contact.phone) and contact.sms_consent}
    order = [contact.preferred_channel] + [c for c in ("email", "sms") if c != contact.preferred_channel]
    return [c for c in order if usable.get(c)][:1]


def address_for(contact: Contact | None, channel: str) -> str | None:
    """Where a message on `channel` goes now, from the patron's current details (None: not reachable so)."""
    if contact is None:
        return None
    if channel == "email":
        return contact.email or None
    if channel == "sms":
        return contact.phone if contact.phone and contact.sms_consent else None
    return None


def unreachable_reason(contact: Contact | None) -> str:
    """What the delivery log says when no channel can be used: the true reason, not always "no details"."""
    if contact is None or not (contact.email or contact.phone):
        return "no contact details for this card"
    return "SMS without sms_consent, and no e-mail address"


# Typography that GSM-7 lacks but has a plain twin: one "—" in a pickup point's name would otherwise send the
# whole SMS as UCS-2 (70 characters a segment instead of 160) and squeeze out the "I'm here" link.
_GSM_TWINS = str.maketrans({"—": "-", "–": "-", "‑": "-", "’": "'", "‘": "'", "“": '"', "”": '"', "«": '"',
                            "»": '"', "…": "...", "\u00a0": " ", "\u202f": " "})


def gsm_friendly(text: str) -> str:
    return text.translate(_GSM_TWINS)


@cache
def _gsm_septets(char: str) -> int:
    """Septets of one character in GSM-7 (2 for an extension character), 0 if it has none. The codec maps each
    character on its own, so a text's length is the sum of its characters'; the codec is pure Python and slow,
    so it is asked once per character rather than once per message and per fitting attempt."""
    try:
        return len(char.encode("gsm03.38"))
    except UnicodeEncodeError:
        return 0


def sms_segments(text: str) -> int:
    """How many SMS a text takes: GSM-7 (extension characters count double) or, with any character outside
    it (ê, â, î, ô, û, ç…), UCS-2 for the whole text."""
    lengths = [_gsm_septets(char) for char in set(text)]
    if 0 not in lengths:
        septets = sum(_gsm_septets(char) for char in text)
        single, part = GSM_SINGLE, GSM_PART
    else:
        septets = len(text.encode("utf-16-be")) // 2
        single, part = UCS2_SINGLE, UCS2_PART
    if septets <= single:
        return 1
    return -(-septets // part)


def fit_sms(render: Callable[[list[str], int], str], items: Sequence[str], max_segments: int = MAX_SMS_SEGMENTS,
            fallback: Callable[[list[str], int], str] | None = None) -> str:
    """Render with as many listed items as fit in `max_segments` (the rest summed up as "+N"). When even none fit,
    fit the `fallback` (the same text without its optional parts: a link cut short is worse than none); else cut."""
    for keep in range(len(items), -1, -1):
        text = render(list(items[:keep]), len(items) - keep)
        if sms_segments(text) <= max_segments:
            return text
    if fallback is not None:
        return fit_sms(fallback, items, max_segments)
    text = render([], len(items))
    while sms_segments(text) > max_segments:
        text = text[:-2] + "…"
    return text


@dataclass(frozen=True)
class QuietHours:
    start: time = time(20, 0)
    end: time = time(8, 0)
    zone: str = "Europe/Paris"

    def next_allowed(self, now: datetime) -> datetime:
        """`now` if an SMS may go now, else the end of the quiet period (in UTC-aware form)."""
        local = now.astimezone(ZoneInfo(self.zone))
        t = local.timetz().replace(tzinfo=None)
        quiet = (t >= self.start or t < self.end) if self.start > self.end else (self.start <= t < self.end)
        if not quiet:
            return now
        day = local.date() if t < self.end else local.date() + timedelta(days=1)
        return datetime.combine(day, self.end, tzinfo=ZoneInfo(self.zone)).astimezone(now.tzinfo)


def parse_clock(text: str) -> time:
    hours, _, minutes = text.partition(":")
    return time(int(hours), int(minutes or 0))


def still_holds(event_type: str, announced_at: datetime, reservation_status: str | None = None,
                copy_returned_at: datetime | None = None) -> bool:
    """Does what a waiting message announces still hold? Checked again when it finally goes (quiet hours, a
    retry): a reservation collected or cancelled meanwhile, or a copy returned since the reminder, drops it."""
    if event_type in ("reservation_ready", "pickup_slot_booked", "pickup_slot_cancelled"):
        return reservation_status in (None, "ready")  # an appointment matters only while the documents wait
    if event_type == "items_unavailable":
        return reservation_status is None  # not ready, not ended: still waiting for a copy
    if event_type == "loan_overdue":
        return copy_returned_at is None or copy_returned_at < announced_at
    return True


def subject_of(event_type: str, data: Mapping[str, object]) -> str | None:
    """What a message is about, when a later event about the same thing makes it obsolete while it waits: a
    due-date shift (its undoing carries the same `shift_id`), a reservation's appointment (booked, moved, given
    back by the library). Other messages stand alone (None)."""
    if event_type == "due_dates_shifted" and data.get("shift_id"):
        return f"shift:{data['shift_id']}"
    if event_type in ("pickup_slot_booked", "pickup_slot_cancelled") and data.get("reservation_id"):
        return f"slot:{data['reservation_id']}"
    return None


def amends(event_type: str, data: Mapping[str, object]) -> bool:
    """A message that takes back an earlier one of its subject (a shift undone): news only if that was told."""
    return event_type == "due_dates_shifted" and bool(data.get("undone"))


def superseded(announced_at: datetime, same_subject: Iterable[datetime]) -> bool:
    """A later event about the same subject was recorded: what this message says is no longer the last word."""
    return any(other > announced_at for other in same_subject)


def is_news(amending: bool, announced_at: datetime, same_subject: Iterable[tuple[datetime, str]]) -> bool:
    """An amendment is news only when the patron was told what it amends: a shift undone before its message went
    leaves the patron's dates as they knew them. `same_subject` is (announced_at, status) of the other deliveries
    of the subject; with none recorded (told before this log began?) it is news."""
    if not amending:
        return True
    earlier = [status for at, status in same_subject if at < announced_at]
    return not earlier or "sent" in earlier


ERASED = "contact details erased"


def resend_refusal(status: str, channel: str, erased: bool, address: str | None, is_superseded: bool) -> str | None:
    """Why staff may not send a delivery again (None: they may). Only a failed or obsolete message, with its text
    kept (erasure blanks it), to an address the patron still gives for its channel, and not replaced since."""
    if status not in ("failed", "obsolete") or channel == "none":
        return f"a delivery that is {status} cannot be sent again"
    if erased:
        return f"the patron's {ERASED}: this message is gone"
    if address is None:
        return f"the patron can no longer be reached by {channel}"
    if is_superseded:
        return "a later message about the same subject replaced this one"
    return None


def retry_at(attempt: int, now: datetime, base_seconds: float = 30, cap_seconds: float = 3600) -> datetime:
    """Exponential back-off after a transient failure: 30 s, 1 min, 2 min … up to an hour."""
    return now + timedelta(seconds=min(base_seconds * 2 ** (attempt - 1), cap_seconds))
