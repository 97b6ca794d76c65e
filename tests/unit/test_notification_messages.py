"""What a message says, called directly: SMS length (GSM-7 or UCS-2) and what fits in two, the templates (shipped
for every announced event in French and English, overridable), local times, pickup slots, selections, due-date
shifts and the "I'm here" link, never cut short. Which events make a message: test_notification_rules."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from services.common.auth import read_reservation_link
from services.common.errors import Unauthorized
from services.notifications.domain import ANNOUNCED, fit_sms, sms_segments
from services.notifications.messages import LINK_GRACE, SHIPPED, Templates, facts
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


def test_gsm7_lengths_and_extension_characters():
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2  # 153 per part once split
    assert sms_segments("a" * 306) == 2 and sms_segments("a" * 307) == 3
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2  # € counts double
    assert sms_segments("é" * 160) == 1  # é is in GSM-7


def test_segments_counted_character_by_character_agree_with_the_codec_on_the_whole_text():
    import random

    from services.notifications.domain import GSM_PART, GSM_SINGLE, UCS2_PART, UCS2_SINGLE

    def by_codec(text):
        try:
            septets, single, part = len(text.encode("gsm03.38")), GSM_SINGLE, GSM_PART
        except UnicodeEncodeError:
            septets, single, part = len(text.encode("utf-16-be")) // 2, UCS2_SINGLE, UCS2_PART
        return 1 if septets <= single else -(-septets // part)

    alphabet = "abcXYZ 019,.:;!?\n[]{}~^|\\€éèàùÉçÇêâîôû—…«»ñÑüÜäöß@$£¥_\"'#%&*()+-/<=>\U0001F600"
    draw = random.Random(7)
    for _ in range(2000):
        text = "".join(draw.choice(alphabet) for _ in range(draw.randint(0, 400)))
        assert sms_segments(text) == by_codec(text), text


def test_one_character_outside_gsm7_turns_the_text_to_ucs2():
    assert sms_segments("ê" + "a" * 69) == 1
    assert sms_segments("ê" + "a" * 70) == 2  # 70 per SMS, 67 per part
    assert sms_segments("ç" + "a" * 133) == 2 and sms_segments("ç" + "a" * 134) == 3


def test_fit_sms_drops_titles_into_a_count_then_cuts():
    render = lambda titles, more: "Prêt : " + ", ".join(titles) + (f" +{more}" if more else "")  # noqa: E731
    text = fit_sms(render, [f"Titre numéro {n}" for n in range(30)])
    assert sms_segments(text) <= 2 and text.endswith("+" + text.rsplit("+", 1)[1])
    assert sms_segments(fit_sms(lambda t, m: "ê" * 500, [])) <= 2


def test_every_announced_event_has_both_languages_and_channels():
    for event_type in ANNOUNCED:
        for language in ("fr", "en"):
            for channel in ("email", "sms"):
                assert (SHIPPED / language / f"{event_type}.{channel}.j2").is_file(), (event_type, language, channel)


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


def link_in(text: str, base: str = "http://127.0.0.1:8005") -> str:
    """The patron link's token in a message (the link ends the SMS, and a line of the e-mail)."""
    found = re.search(re.escape(base) + r"/r#([A-Za-z0-9_.-]+)", text)
    assert found, text
    return found.group(1)


@time_machine.travel(STARTS - timedelta(days=1))  # the link is read back before it expires, whatever the day
def test_ready_message_links_to_the_patron_page_with_its_token_in_the_fragment():
    for language in ("fr", "en"):
        mail = render("reservation_ready", ready(POINT), language=language,
                      patron_app_url="https://app.example.org/drive/")
        link = read_reservation_link(None, link_in(mail, "https://app.example.org/drive"))
        assert link.reservation_id == RID and link.expires_at == STARTS + LINK_GRACE  # the deadline, and a grace
        sms = render("reservation_ready", ready(POINT), "sms", language, patron_app_url="https://app.example.org/drive")
        assert sms.endswith("/r#" + link_in(sms, "https://app.example.org/drive")) and sms_segments(sms) <= 2
    # By default the web service's patron page (WEB_URL), no longer a patron app that does not exist.
    assert read_reservation_link(None, link_in(render("reservation_ready", ready(POINT)))).reservation_id == RID


def test_the_link_goes_before_any_title_but_is_never_cut():
    many = render("reservation_ready", ready(POINT, titles=12), "sms")
    assert many.endswith("/r#" + link_in(many)) and "+" in many and sms_segments(many) <= 2
    # The counter's "—" goes as "-": the SMS stays GSM-7, so the link still fits.
    dashed = render("reservation_ready", ready(COUNTER), "sms")
    assert "centrale - espace jeunesse" in dashed and dashed.endswith("/r#" + link_in(dashed))
    assert sms_segments(dashed) <= 2
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


def test_patron_app_url_is_a_setting_defaulting_to_the_web_service(tmp_path, monkeypatch):
    monkeypatch.delenv("PATRON_APP_URL", raising=False)
    monkeypatch.delenv("WEB_URL", raising=False)
    office = PostOffice({"NOTIFY_FILE_SINK_DIR": str(tmp_path)})
    assert office.templates.app_url == "http://127.0.0.1:8005"
    office = PostOffice({"NOTIFY_FILE_SINK_DIR": str(tmp_path), "WEB_URL": "https://drive.example.org"})
    assert office.templates.app_url == "https://drive.example.org"
    office = PostOffice({"NOTIFY_FILE_SINK_DIR": str(tmp_path), "WEB_URL": "https://drive.example.org",
                         "PATRON_APP_URL": "https://app.example.org/"})
    assert office.templates.app_url == "https://app.example.org"


@time_machine.travel(STARTS - timedelta(days=1))
def test_the_link_is_signed_with_the_configured_secret(tmp_path):
    config = {"NOTIFY_FILE_SINK_DIR": str(tmp_path), "PATRON_LINK_SECRET": "another-secret-" + "x" * 32}
    _, sms = PostOffice(config).templates.render("reservation_ready", "sms", "fr",
                                                 facts("reservation_ready", ready(POINT)))
    token = link_in(sms)
    assert read_reservation_link(config, token).reservation_id == RID
    with pytest.raises(Unauthorized):
        read_reservation_link(None, token)  # the embedded default's secret does not open it


def test_templates_french_by_default_and_overridable(tmp_path):
    data = {"reservation_id": "r", "patron": "C1", "cancelled_by": "staff",
            "pickup_point": {"id": "p", "name": "Médiathèque de quartier", "kind": "library", "site": "n"},
            "lines": [{"line_id": "l", "title_id": "t", "title": "La nuit du nord"}]}
    subject, body = Templates().render("reservation_cancelled", "email", "de", facts("reservation_cancelled", data))
    assert subject == "Réservation annulée par la médiathèque" and "La nuit du nord" in body
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "reservation_cancelled.email.j2").write_text("Annulation\n{{ titles | join(' / ') }}\n")
    subject, body = Templates(str(tmp_path)).render("reservation_cancelled", "email", "fr",
                                                    facts("reservation_cancelled", data))
    assert (subject, body.strip()) == ("Annulation", "La nuit du nord")


def render_shift(data: dict, channel: str, language: str = "fr") -> str:
    subject, body = Templates().render("due_dates_shifted", channel, language, facts("due_dates_shifted", data))
    return f"{subject}\n{body}" if subject else body


def test_a_shift_of_only_a_ready_reservation_speaks_of_its_pickup_deadline():
    deadline = datetime(2026, 5, 12, 16, tzinfo=UTC)  # 18:00 in Paris
    only = {"shift_id": "sh", "patron": "C1", "undone": False, "loans": [],
            "reservations": [{"reservation_id": "r", "previous_pickup_deadline": deadline - timedelta(days=9),
                              "pickup_deadline": deadline}]}
    for channel in ("email", "sms"):
        text = render_shift(only, channel)
        assert "jusqu'au mardi 12 mai à 18 h 00" in text and "rendre" not in text, text
        assert "until Tuesday 12 May at 18:00" in render_shift(only, channel, "en")
    assert render_shift({**only, "undone": True}, "email").startswith("Date limite de retrait rétablie\n")
    loan = {"loan_id": "l", "title": "La nuit du nord", "previous_due_at": deadline, "due_at": deadline}
    both = render_shift({**only, "loans": [loan]}, "email")
    assert both.startswith("Nouvelles dates de retour\n") and "à rendre à partir du 12 mai" in both
    assert "Votre réservation prête vous attend jusqu'au mardi 12 mai à 18 h 00." in both
