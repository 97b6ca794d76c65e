"""The sender's rules, called directly: which address a resend goes to, whether it may be resent, what supersedes
a waiting message, whether an amendment is news, the log's true reason, and an attempt that crashes."""

from datetime import UTC, datetime, timedelta

from services.notifications import postroom
from services.notifications.channels import TransientFailure
from services.notifications.domain import (
    Contact,
    address_for,
    amends,
    is_news,
    resend_refusal,
    subject_of,
    superseded,
    unreachable_reason,
)
from services.notifications.messages import Templates, facts

AT = datetime(2026, 12, 1, 10, tzinfo=UTC)
BOTH = Contact("C1", "a@b.fr", "+33612345678", "sms", "fr", True)


def test_a_resend_goes_to_the_current_address_of_its_channel():
    assert address_for(BOTH, "email") == "a@b.fr" and address_for(BOTH, "sms") == "+33612345678"
    assert address_for(Contact("C1", "a@b.fr", "+33612345678", "email", "fr", False), "sms") is None  # no consent
    assert address_for(Contact("C1", None, "+33612345678", "sms", "fr", True), "email") is None
    assert address_for(None, "email") is None and address_for(BOTH, "none") is None


def test_what_may_be_resent():
    assert resend_refusal("failed", "email", False, "a@b.fr", False) is None
    assert resend_refusal("obsolete", "sms", False, "+33612345678", False) is None
    assert "sent cannot be sent again" in resend_refusal("sent", "email", False, "a@b.fr", False)
    assert "pending" in resend_refusal("pending", "email", False, "a@b.fr", False)
    assert resend_refusal("failed", "none", False, None, False) is not None  # never rendered
    assert "erased" in resend_refusal("failed", "email", True, "a@b.fr", False)  # erased, then given again
    assert "no longer be reached by sms" in resend_refusal("failed", "sms", False, None, False)
    assert "replaced" in resend_refusal("failed", "email", False, "a@b.fr", True)


def test_subjects_and_amendments():
    shift = {"shift_id": "sh1", "patron": "C1", "undone": False, "loans": [], "reservations": []}
    assert subject_of("due_dates_shifted", shift) == subject_of("due_dates_shifted", {**shift, "undone": True})
    assert subject_of("due_dates_shifted", shift) != subject_of("due_dates_shifted", {**shift, "shift_id": "sh2"})
    assert subject_of("pickup_slot_booked", {"reservation_id": "r1"}) == (
        subject_of("pickup_slot_cancelled", {"reservation_id": "r1"}))
    assert subject_of("reservation_ready", {"reservation_id": "r1"}) is None  # still_holds covers it
    assert amends("due_dates_shifted", {**shift, "undone": True}) and not amends("due_dates_shifted", shift)
    assert not amends("pickup_slot_booked", {"undone": True})


def test_a_later_event_of_the_subject_supersedes_an_earlier_never_a_later():
    assert superseded(AT, [AT + timedelta(minutes=5)])
    assert not superseded(AT, [AT - timedelta(minutes=5)]) and not superseded(AT, [AT]) and not superseded(AT, [])


def test_an_undoing_is_news_only_when_what_it_undoes_was_told():
    before = AT - timedelta(hours=1)
    assert is_news(True, AT, [(before, "sent")])
    assert not is_news(True, AT, [(before, "obsolete")])  # the shift never went: dates as the patron knew them
    assert not is_news(True, AT, [(before, "failed")])
    assert is_news(True, AT, [])  # nothing recorded of the shift: tell
    assert is_news(True, AT, [(AT + timedelta(hours=1), "pending")])  # only earlier ones count
    assert is_news(False, AT, [(before, "obsolete")])


def test_the_log_says_why_nobody_was_told():
    assert unreachable_reason(None) == "no contact details for this card"
    assert "sms_consent" in unreachable_reason(Contact("C1", None, "+33612345678", "sms", "fr", False))


class Crashing:
    def send(self, delivery_id, recipient, subject, body):
        raise ValueError("Header values may not contain linefeed or carriage return characters")


class Busy:
    def send(self, delivery_id, recipient, subject, body):
        raise TransientFailure("SMTP 451")


def test_an_attempt_that_raises_is_that_delivery_s_failure_to_retry():
    item = postroom.Outgoing("d1", "email", "a@b.fr", "Sujet", "Texte")
    assert postroom.attempt({"email": Crashing()}, item) == postroom.Attempt("d1", error="the attempt crashed "
                                                                                       "(ValueError)")
    assert postroom.attempt({"email": Busy()}, item) == postroom.Attempt("d1", error="SMTP 451")
    decided = postroom.Attempt("d1", drop_as="obsolete")
    assert postroom.attempt({"email": Crashing()}, postroom.Outgoing("d1", "email", None, None, None, decided)) == (
        decided)


def render(data: dict, channel: str, language: str = "fr") -> str:
    subject, body = Templates().render("due_dates_shifted", channel, language, facts("due_dates_shifted", data))
    return f"{subject}\n{body}" if subject else body


def test_a_shift_of_only_a_ready_reservation_speaks_of_its_pickup_deadline():
    deadline = datetime(2026, 5, 12, 16, tzinfo=UTC)  # 18:00 in Paris
    only = {"shift_id": "sh", "patron": "C1", "undone": False, "loans": [],
            "reservations": [{"reservation_id": "r", "previous_pickup_deadline": deadline - timedelta(days=9),
                              "pickup_deadline": deadline}]}
    for channel in ("email", "sms"):
        text = render(only, channel)
        assert "jusqu'au mardi 12 mai à 18 h 00" in text and "rendre" not in text, text
        assert "until Tuesday 12 May at 18:00" in render(only, channel, "en")
    assert render({**only, "undone": True}, "email").startswith("Date limite de retrait rétablie\n")
    loan = {"loan_id": "l", "title": "La nuit du nord", "previous_due_at": deadline, "due_at": deadline}
    both = render({**only, "loans": [loan]}, "email")
    assert both.startswith("Nouvelles dates de retour\n") and "à rendre à partir du 12 mai" in both
    assert "Votre réservation prête vous attend jusqu'au mardi 12 mai à 18 h 00." in both
