"""Notifications' rules, called directly: which events patrons are told of, on which channel and when (quiet hours),
whether a waiting message still holds, was superseded or is news, what may be sent again and to which address,
the delivery log's true reason, back-off, and an attempt that crashes (what a message says:
test_notification_messages)."""

from datetime import UTC, datetime, time, timedelta

import pytest

from services.notifications import postroom
from services.notifications.channels import TransientFailure
from services.notifications.domain import (
    Contact,
    QuietHours,
    address_for,
    amends,
    channels_for,
    is_news,
    reminders_suspended,
    resend_refusal,
    retry_at,
    should_announce,
    still_holds,
    subject_of,
    superseded,
    unreachable_reason,
)

AT = datetime(2026, 12, 1, 10, tzinfo=UTC)
BOTH = Contact("C1", "a@b.fr", "+33612345678", "sms", "fr", True)


def test_quiet_hours_in_paris():
    quiet = QuietHours(time(20), time(8), "Europe/Paris")
    noon = datetime(2026, 12, 1, 11, tzinfo=UTC)  # 12:00 in Paris
    assert quiet.next_allowed(noon) == noon
    late = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)  # 22:30 in Paris
    assert quiet.next_allowed(late) == datetime(2026, 12, 2, 7, tzinfo=UTC)
    early = datetime(2026, 7, 2, 4, tzinfo=UTC)  # 06:00 in Paris, summer time
    assert quiet.next_allowed(early) == datetime(2026, 7, 2, 6, tzinfo=UTC)
    assert QuietHours(time(0), time(0)).next_allowed(late) == late  # an empty quiet period


def test_channel_choice():
    both = Contact("C1", "a@b.fr", "+33612345678", "sms", "fr", True)
    assert channels_for(both) == ["sms"]
    assert channels_for(Contact("C1", "a@b.fr", "+33612345678", "sms", "fr", False)) == ["email"]  # no consent
    assert channels_for(Contact("C1", None, None, "email", "fr", False)) == []


def test_still_holds():
    announced = datetime(2026, 12, 1, tzinfo=UTC)
    assert still_holds("reservation_ready", announced, "ready")
    assert not still_holds("reservation_ready", announced, "collected")
    assert not still_holds("reservation_ready", announced, "cancelled")
    assert still_holds("items_unavailable", announced, None)  # still waiting for a copy
    assert not still_holds("items_unavailable", announced, "ready")
    assert not still_holds("items_unavailable", announced, "cancelled")
    assert not still_holds("loan_overdue", announced, copy_returned_at=announced + timedelta(hours=2))
    assert still_holds("loan_overdue", announced, copy_returned_at=announced - timedelta(days=40))  # a former loan


def test_overdue_reminders_are_suspended_only_within_the_continuity_period():
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert not reminders_suspended(None, now) and not reminders_suspended({"suspended": False}, now)
    assert reminders_suspended({"suspended": True}, now)  # open-ended on both sides
    period = {"suspended": True, "starts_at": "2026-11-30T00:00:00+00:00", "ends_at": "2026-12-02T00:00:00+00:00"}
    assert reminders_suspended(period, now)
    assert not reminders_suspended(period, datetime(2026, 11, 29, 23, tzinfo=UTC))  # not yet
    assert not reminders_suspended(period, datetime(2026, 12, 2, tzinfo=UTC))  # over: the end is excluded


def test_back_off_grows_and_is_capped():
    now = datetime(2026, 12, 1, tzinfo=UTC)
    waits = [(retry_at(n, now, 30, 3600) - now).total_seconds() for n in (1, 2, 3, 10)]
    assert waits == [30, 60, 120, 3600]


def test_a_cancellation_is_news_only_when_staff_made_it():
    data = {"reservation_id": "r", "patron": "C1", "cancelled_by": "staff"}
    assert should_announce("reservation_cancelled", data)
    assert not should_announce("reservation_cancelled", {**data, "cancelled_by": "patron"})  # they know of their own


@pytest.mark.parametrize(("reason", "by", "told"), [
    ("drive_closed", "staff", True), ("cancelled", "staff", True), ("cancelled", "patron", False),
    ("moved", "patron", False), ("moved", "staff", False), ("reservation_closed", "system", False)])
def test_a_slot_given_back_is_news_only_when_the_library_did_it(reason, by, told):
    assert should_announce("pickup_slot_cancelled", {"reservation_id": "r", "patron": "C1", "reason": reason,
                                                     "cancelled_by": by}) is told


def test_arrivals_are_for_the_counter_not_the_patron():
    assert not should_announce("patron_arrived", {"reservation_id": "r", "patron": "C1"})
    for event_type in ("selection_requested", "selection_prepared", "pickup_slot_booked"):
        assert should_announce(event_type, {"patron": "C1"})


def test_slot_messages_hold_only_while_the_reservation_waits():
    announced = datetime(2026, 12, 1, tzinfo=UTC)
    for event_type in ("pickup_slot_booked", "pickup_slot_cancelled"):
        assert still_holds(event_type, announced, "ready") and still_holds(event_type, announced, None)
        assert not still_holds(event_type, announced, "collected")
        assert not still_holds(event_type, announced, "cancelled")


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
