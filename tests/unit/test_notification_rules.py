"""Notifications' rules, called directly: SMS length, quiet hours, channel choice, still-true checks, back-off,
templates (shipped and overridden)."""

from datetime import UTC, datetime, time, timedelta

from services.notifications.domain import (
    Contact,
    QuietHours,
    channels_for,
    fit_sms,
    reminders_suspended,
    retry_at,
    should_announce,
    sms_segments,
    still_holds,
)
from services.notifications.messages import Templates, facts


def test_gsm7_lengths_and_extension_characters():
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2  # 153 per part once split
    assert sms_segments("a" * 306) == 2 and sms_segments("a" * 307) == 3
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2  # € counts double
    assert sms_segments("é" * 160) == 1  # é is in GSM-7


def test_one_character_outside_gsm7_turns_the_text_to_ucs2():
    assert sms_segments("ê" + "a" * 69) == 1
    assert sms_segments("ê" + "a" * 70) == 2  # 70 per SMS, 67 per part
    assert sms_segments("ç" + "a" * 133) == 2 and sms_segments("ç" + "a" * 134) == 3


def test_fit_sms_drops_titles_into_a_count_then_cuts():
    render = lambda titles, more: "Prêt : " + ", ".join(titles) + (f" +{more}" if more else "")  # noqa: E731
    text = fit_sms(render, [f"Titre numéro {n}" for n in range(30)])
    assert sms_segments(text) <= 2 and text.endswith("+" + text.rsplit("+", 1)[1])
    assert sms_segments(fit_sms(lambda t, m: "ê" * 500, [])) <= 2


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


def test_templates_french_by_default_and_overridable(tmp_path):
    data = {"reservation_id": "r", "patron": "C1", "cancelled_by": "staff",
            "pickup_point": {"id": "p", "name": "Médiathèque de quartier", "kind": "library", "site": "n"},
            "lines": [{"line_id": "l", "title_id": "t", "title": "La nuit du nord"}]}
    assert should_announce("reservation_cancelled", data)
    assert not should_announce("reservation_cancelled", {**data, "cancelled_by": "patron"})
    subject, body = Templates().render("reservation_cancelled", "email", "de", facts("reservation_cancelled", data))
    assert subject == "Réservation annulée par la médiathèque" and "La nuit du nord" in body
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "reservation_cancelled.email.j2").write_text("Annulation\n{{ titles | join(' / ') }}\n")
    subject, body = Templates(str(tmp_path)).render("reservation_cancelled", "email", "fr",
                                                    facts("reservation_cancelled", data))
    assert (subject, body.strip()) == ("Annulation", "La nuit du nord")
