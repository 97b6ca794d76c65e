"""What the pages say, in French (the default) and English: a small catalogue, and the reservations API's
refusals put in words (the API's own message, in English, stays beside them for the record)."""

from typing import Any

LANGUAGES = ("fr", "en")
DEFAULT = "fr"

CATALOGUE: dict[str, dict[str, str]] = {
    "fr": {
        "board_title": "Comptoir — {point}", "patron_title": "Votre réservation", "day": "Journée du {day}",
        "closed": "Fermé ce jour : {why}", "slots": "Créneaux du jour", "walk_ins": "Prêtes, sans rendez-vous",
        "early": "Arrivé·es avant que ce soit prêt", "outside": "Attendent dehors", "nobody": "Personne",
        "empty_slot": "Aucun rendez-vous", "card": "Carte", "shelf": "Étagère", "claimed_by": "Pris en charge par",
        "arrived_at": "Arrivé·e à {time}", "documents": "Documents", "status": "État",
        "claim": "Je m'en occupe", "release": "Je laisse", "ready": "Prêt (étagère)", "collect": "Remis",
        "arrived": "Arrivé·e (téléphone)", "shelf_label": "Étagère d'attente",
        "live": "En direct", "lost": "Connexion perdue — reconnexion…", "signing_in": "Connexion en cours…",
        "no_token": "Ouvrez ce tableau avec le lien donné par « drive board-link » (il contient votre jeton).",
        "not_staff": "Ce lien n'ouvre pas un tableau de comptoir : il faut un jeton du personnel.",
        "not_link": "Ce lien n'est pas celui d'une réservation, ou il a expiré.",
        "signed_out": "Session expirée : rouvrez le lien.", "done": "C'est fait.", "language": "Langue",
        "im_here": "Je suis arrivé·e", "told": "Le comptoir sait que vous êtes là.",
        "where": "Où", "until": "À retirer jusqu'au {deadline}", "slot": "Votre créneau",
        "no_slot": "Pas de créneau réservé.", "book": "Réserver ce créneau", "move": "Déplacer vers ce créneau",
        "free_slots": "Créneaux libres", "no_free": "Aucun créneau libre ces jours-ci.", "places": "{n} place(s)",
        "status_placed": "enregistrée", "status_allocated": "en préparation", "status_ready": "prête",
        "status_collected": "retirée", "status_cancelled": "annulée", "status_expired": "expirée",
        "status_waiting_for_stop": "en attente du bibliobus",
        "refused": "Refusé", "refused_claimed": "Refusé : {who} s'en occupe déjà.",
        "refused_status": "Refusé : impossible pour une réservation « {status} ».",
        "refused_401": "Refusé : votre session n'est plus valable, rouvrez le lien.",
        "refused_403": "Refusé : vous n'avez pas le droit de faire ceci.",
        "refused_404": "Refusé : introuvable.",
        "refused_full": "Refusé : ce créneau est complet, choisissez-en un autre.",
        "refused_closed": "Refusé : ce lien n'est plus valable (réservation retirée, annulée ou expirée).",
        "refused_503": "Le service des réservations ne répond pas ; réessayez dans un instant.",
        "refused_csrf": "Refusé : jeton de formulaire absent ou faux ; rechargez la page.",
    },
    "en": {
        "board_title": "Counter — {point}", "patron_title": "Your reservation", "day": "Day of {day}",
        "closed": "Closed today: {why}", "slots": "Today's slots", "walk_ins": "Ready, no appointment",
        "early": "Arrived before it was ready", "outside": "Waiting outside", "nobody": "Nobody",
        "empty_slot": "No appointment", "card": "Card", "shelf": "Shelf", "claimed_by": "Claimed by",
        "arrived_at": "Arrived at {time}", "documents": "Documents", "status": "Status",
        "claim": "I'll take it", "release": "Release", "ready": "Ready (shelf)", "collect": "Hand over",
        "arrived": "Arrived (phone)", "shelf_label": "Hold shelf",
        "live": "Live", "lost": "Connection lost — reconnecting…", "signing_in": "Signing in…",
        "no_token": "Open this board with the link `drive board-link` prints (it carries your token).",
        "not_staff": "This link does not open a counter board: it takes a staff token.",
        "not_link": "This is not a reservation's link, or it has expired.",
        "signed_out": "Session expired: open the link again.", "done": "Done.", "language": "Language",
        "im_here": "I'm here", "told": "The counter knows you are here.",
        "where": "Where", "until": "Collect by {deadline}", "slot": "Your slot",
        "no_slot": "No slot booked.", "book": "Book this slot", "move": "Move to this slot",
        "free_slots": "Free slots", "no_free": "No free slot in the coming days.", "places": "{n} place(s)",
        "status_placed": "placed", "status_allocated": "being prepared", "status_ready": "ready",
        "status_collected": "collected", "status_cancelled": "cancelled", "status_expired": "expired",
        "status_waiting_for_stop": "waiting for the bibliobus",
        "refused": "Refused", "refused_claimed": "Refused: {who} is already on it.",
        "refused_status": "Refused: not possible for a reservation that is “{status}”.",
        "refused_401": "Refused: your session is no longer valid, open the link again.",
        "refused_403": "Refused: you may not do this.",
        "refused_404": "Refused: not found.", "refused_full": "Refused: this slot is full, choose another one.",
        "refused_closed": "Refused: this link is no longer valid (reservation collected, cancelled or expired).",
        "refused_503": "The reservations service does not answer; try again in a moment.",
        "refused_csrf": "Refused: form token missing or wrong; reload the page.",
    },
}


def language(asked: str | None) -> str:
    return asked if asked in LANGUAGES else DEFAULT


def say(lang: str, key: str, **values: Any) -> str:
    return CATALOGUE[language(lang)][key].format(**values)


def status_word(lang: str, status: str) -> str:
    return CATALOGUE[language(lang)].get(f"status_{status}", status)


def refusal(lang: str, status: int, body: Any) -> str:
    """A refusal of the reservations API in the page's language: the known cases in words, else the status."""
    body = body if isinstance(body, dict) else {}
    details = body.get("details") or {}
    if details.get("claimed_by"):
        return say(lang, "refused_claimed", who=details["claimed_by"])
    if body.get("error") == "link_closed":
        return say(lang, "refused_closed")
    if status == 409 and details.get("field") == "starts_at":
        return say(lang, "refused_full")
    if status == 409 and details.get("status"):
        return say(lang, "refused_status", status=status_word(lang, details["status"]))
    if status in (401, 403, 404, 503):
        return say(lang, f"refused_{status}")
    return f"{say(lang, 'refused')} ({status}) : {body.get('message', '')}".strip()


def refusal_body(lang: str, status: int, body: Any) -> dict[str, Any]:
    """What a page's script receives for a refusal: the API's error code, the refusal in words."""
    code = body.get("error") if isinstance(body, dict) else None
    return {"error": code, "message": refusal(lang, status, body)}
