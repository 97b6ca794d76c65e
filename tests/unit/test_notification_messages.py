"""What patrons are told of pickup slots, selections and the "I'm here" link: which events make a message, their
text in French and English, local times, and SMS that keep within two segments without a link cut short."""

from datetime import UTC, datetime

import pytest

from services.notifications.domain import ANNOUNCED, fit_sms, should_announce, sms_segments, still_holds
from services.notifications.messages import SHIPPED, Templates, facts
from services.notifications.policy import PostOffice

POINT = {"id": "neighbourhood", "name": "Médiathèque de quartier", "kind": "library", "site": "neighbourhood"}
COUNTER = {"id": "central-youth", "name": "Médiathèque centrale — espace jeunesse", "kind": "counter",
           "site": "central"}  # "—" is outside GSM-7: an SMS writes it "-"
RID = "0b5c2f7e-1d3a-4c59-9e7b-2f1a8d6c4e21"
STARTS, ENDS = datetime(2026, 12, 1, 9, 15, tzinfo=UTC), datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # 10:15 in Paris


def slot(**extra) -> dict:
    return {"appointment_id": "a1", "reservation_id": RID, "patron": "C1", "pickup_point": POINT,
            "starts_at": STARTS, "ends_at": ENDS, **extra}


def ready(point: dict, titles: int = 3) -> dict:
    return {"reservation_id": RID, "patron": "C1", "pickup_point": point, "pickup_deadline": STARTS,
            "lines": [{"line_id": f"l{n}", "title_id": f"t{n}", "title": f"La nuit du nord {n}"}
                      for n in range(titles)]}


def render(event_type: str, data: dict, channel: str = "email", language: str = "fr", **kwargs) -> str:
    subject, body = Templates(**kwargs).render(event_type, channel, language, facts(event_type, data))
    return f"{subject}\n{body}" if subject else body


def test_every_announced_event_has_both_languages_and_channels():
    for event_type in ANNOUNCED:
        for language in ("fr", "en"):
            for channel in ("email", "sms"):
                assert (SHIPPED / language / f"{event_type}.{channel}.j2").is_file(), (event_type, language, channel)


@pytest.mark.parametrize(("reason", "by", "told"), [
    ("drive_closed", "staff", True), ("cancelled", "staff", True), ("cancelled", "patron", False),
    ("moved", "patron", False), ("moved", "staff", False), ("reservation_closed", "system", False)])
def test_a_slot_given_back_is_news_only_when_the_library_did_it(reason, by, told):
    assert should_announce("pickup_slot_cancelled", slot(reason=reason, cancelled_by=by)) is told


def test_arrivals_are_for_the_counter_not_the_patron():
    assert not should_announce("patron_arrived", {"reservation_id": RID, "patron": "C1"})
    for event_type in ("selection_requested", "selection_prepared", "pickup_slot_booked"):
        assert should_announce(event_type, {"patron": "C1"})


def test_booked_slot_in_paris_time_french_and_english():
    text = render("pickup_slot_booked", slot(moved_from=None))
    assert text.startswith("Rendez-vous confirmé le mardi 1 décembre à 10 h 15\n")
    assert "à Médiathèque de quartier le mardi 1 décembre à 10 h 15 (créneau jusqu'à 10 h 30)" in text
    assert "déplacé" not in text
    assert "Tuesday 1 December at 10:15" in render("pickup_slot_booked", slot(moved_from=None), language="en")
    sms = render("pickup_slot_booked", slot(moved_from=None), "sms")
    assert sms == "Médiathèque : rendez-vous confirmé à Médiathèque de quartier le mardi 1 décembre à 10 h 15."


def test_a_moved_slot_says_which_one_it_left():
    moved = slot(moved_from=datetime(2026, 11, 30, 16, tzinfo=UTC))
    assert "Votre rendez-vous du lundi 30 novembre à 17 h 00 est déplacé." in render("pickup_slot_booked", moved)
    sms = render("pickup_slot_booked", moved, "sms")
    assert sms.endswith("le mardi 1 décembre à 10 h 15 (au lieu du lundi 30 novembre à 17 h 00).")
    english = render("pickup_slot_booked", moved, "sms", "en")
    assert "moved to Tuesday 1 December at 10:15 (was Monday 30 November at 17:00)" in english


def test_slot_cancellations_ask_for_another_slot():
    closed = render("pickup_slot_cancelled", slot(reason="drive_closed", cancelled_by="staff"))
    assert closed.startswith("Rendez-vous annulé : drive fermé ce jour-là\n")
    assert "réserver un autre créneau" in closed
    sms = render("pickup_slot_cancelled", slot(reason="drive_closed", cancelled_by="staff", pickup_point=COUNTER),
                 "sms")
    assert sms.startswith("Médiathèque : drive fermé le 1 décembre, votre rendez-vous de 10 h 15")
    assert sms.endswith("Merci de réserver un autre créneau.") and sms_segments(sms) <= 2
    by_staff = render("pickup_slot_cancelled", slot(reason="cancelled", cancelled_by="staff"), language="en")
    assert by_staff.startswith("Pickup cancelled by the library\n") and "please book another slot" in by_staff


def test_selection_acknowledged_then_chosen_or_not():
    asked = {"selection_id": "s1", "patron": "C1", "pickup_point": POINT, "documents": 4}
    assert "votre demande de sélection de 4 documents" in render("selection_requested", asked)
    assert "request for a selection of 4 documents" in render("selection_requested", asked, "sms", "en")
    chosen = {**asked, "outcome": "prepared", "reservation_id": RID}
    assert "Votre sélection de 4 documents a été choisie. Nous vous préviendrons" in render("selection_prepared",
                                                                                          chosen)
    assert "selection of 1 document has been chosen" in render("selection_prepared", {**chosen, "documents": 1},
                                                               "sms", "en")
    nothing = {**asked, "outcome": "nothing_available", "documents": 0}
    text = render("selection_prepared", nothing)
    assert "n'ont rien trouvé" in text and "appelez la médiathèque" in text and "choisie" not in text
    assert "call the library" in render("selection_prepared", nothing, "sms", "en")


def test_ready_message_links_to_i_am_here():
    link = f"https://app.example.org/drive/reservations/{RID}/arrived"
    for language in ("fr", "en"):
        assert link in render("reservation_ready", ready(POINT), language=language,
                              patron_app_url="https://app.example.org/drive/")
        sms = render("reservation_ready", ready(POINT), "sms", language, patron_app_url="https://app.example.org/drive")
        assert sms.endswith(link) and sms_segments(sms) <= 2
    assert f"https://drive.example-bibliotheque.fr/reservations/{RID}/arrived" in render("reservation_ready",
                                                                                        ready(POINT))


def test_the_link_goes_before_any_title_but_is_never_cut():
    many = render("reservation_ready", ready(POINT, titles=12), "sms")
    assert many.endswith(f"/reservations/{RID}/arrived") and "+" in many and sms_segments(many) <= 2
    # The counter's "—" goes as "-": the SMS stays GSM-7, so the link still fits.
    dashed = render("reservation_ready", ready(COUNTER), "sms")
    assert "centrale - espace jeunesse" in dashed and dashed.endswith("/arrived") and sms_segments(dashed) <= 2
    # A name with a character GSM-7 lacks (here "œ") makes it UCS-2: two SMS hold 134 characters, the link
    # cannot fit, so it is left out whole and titles fit instead.
    ucs2 = render("reservation_ready", ready({**COUNTER, "name": "Bibliothèque Sœur Marie"}), "sms")
    assert "http" not in ucs2 and "La nuit du nord 0" in ucs2 and sms_segments(ucs2) <= 2


def test_fit_sms_falls_back_to_the_text_without_its_optional_part():
    def text(link: bool):
        return lambda titles, more: "Prêt : " + ", ".join(titles) + (f" +{more}" if more else "") + (
            " https://drive.example/" + "x" * 100 if link else "")
    assert fit_sms(text(True), ["a", "b"], fallback=text(False)).endswith("x")  # it fits: kept
    ucs2 = fit_sms(text(True), ["a", "b"], max_segments=1, fallback=text(False))
    assert ucs2 == "Prêt : a, b"  # "ê" makes it UCS-2: 70 characters, no room for the link


def test_slot_messages_hold_only_while_the_reservation_waits():
    announced = datetime(2026, 12, 1, tzinfo=UTC)
    for event_type in ("pickup_slot_booked", "pickup_slot_cancelled"):
        assert still_holds(event_type, announced, "ready") and still_holds(event_type, announced, None)
        assert not still_holds(event_type, announced, "collected")
        assert not still_holds(event_type, announced, "cancelled")


def test_patron_app_url_is_a_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("PATRON_APP_URL", raising=False)
    office = PostOffice({"NOTIFY_FILE_SINK_DIR": str(tmp_path)})
    assert office.templates.app_url == "https://drive.example-bibliotheque.fr"
    office = PostOffice({"NOTIFY_FILE_SINK_DIR": str(tmp_path), "PATRON_APP_URL": "https://app.example.org/"})
    assert office.templates.app_url == "https://app.example.org"
