"""Demo data shaped like the reference network: a central library with an adult and a youth counter, a
neighbourhood library, the bibliobus tour of the outlying districts, and a catalogue of a few hundred titles
with copies spread over the sites."""

import random
from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

from services.reservations.models import PickupPoint

PICKUP_POINTS = [
    # The adult counter keeps the network's default drive hours (Tuesday–Saturday), four patrons a slot; the youth
    # counter opens on Wednesdays and Saturdays, when children are free, two a slot.
    {"id": "central-adult", "name": "Médiathèque centrale — espace adultes", "kind": "counter", "site": "central",
     "slot_capacity": 4},
    {"id": "central-youth", "name": "Médiathèque centrale — espace jeunesse", "kind": "counter", "site": "central",
     "opening_hours": {"wednesday": ["10:00-12:30", "14:00-18:00"], "saturday": ["10:00-12:30", "14:00-17:00"]},
     "slot_capacity": 2},
    {"id": "neighbourhood", "name": "Médiathèque de quartier", "kind": "library", "site": "neighbourhood"},
]

_SUBJECTS = ["La nuit", "La mer", "La forêt", "La ville", "La neige", "La maison", "La rivière", "La montagne",
             "L'étoile", "L'île", "La gare", "Le jardin", "La frontière", "La lumière", "La mémoire", "Le silence",
             "Le voyage", "La tempête", "L'horizon", "Le phare"]
_COMPLEMENTS = ["du nord", "de minuit", "sous la neige", "d'Uppsala", "au bord du lac", "des oubliés", "de l'hiver",
                "sans retour", "des marées", "de Chalon", "en Bourgogne", "des lucioles"]
_AUTHORS = ["Camille Laurent", "Hugo Mercier", "Inès Fabre", "Jonas Lindqvist", "Karin Holm", "Léa Morel",
            "Malik Benali", "Nora Sjöberg", "Oscar Petit", "Paula Duarte", "Romain Giraud", "Sofia Berg"]
_MATERIALS = ["book"] * 12 + ["comic"] * 4 + ["dvd"] * 2 + ["cd", "audiobook"]
_SHELVES = {"book": "R", "comic": "BD", "dvd": "DVD", "cd": "CD", "audiobook": "LA"}


def _slot(weekday: str, arrives: str, departs: str) -> dict:
    return {"weekday": weekday, "arrives": arrives, "departs": departs}


# The bibliobus week around Chalon-sur-Saône: a dozen stops, mornings and late afternoons, two of them twice.
TOUR_STOPS = [
    ("aubepins", "Les Aubépins — place de l'Europe", "Les Aubépins", 46.7992, 4.8361, 12,
     [_slot("tuesday", "09:30", "11:30"), _slot("friday", "16:00", "18:00")]),
    ("pres-saint-jean", "Les Prés Saint-Jean — centre social", "Les Prés Saint-Jean", 46.7841, 4.8712, 12,
     [_slot("wednesday", "14:00", "16:30"), _slot("saturday", "09:30", "11:30")]),
    ("stade", "Le Stade — rue Pierre-de-Coubertin", "Le Stade", 46.7908, 4.8437, 10,
     [_slot("monday", "16:00", "18:00")]),
    ("saint-jean-des-vignes", "Saint-Jean-des-Vignes — école", "Saint-Jean-des-Vignes", 46.8003, 4.8515, 8,
     [_slot("thursday", "09:30", "11:00")]),
    ("charreaux", "Les Charreaux — square", "Les Charreaux", 46.7762, 4.8446, 8, [_slot("thursday", "16:00", "17:30")]),
    ("saint-remy-mairie", "Saint-Rémy — mairie", "Saint-Rémy", 46.7647, 4.8331, 10,
     [_slot("tuesday", "16:00", "18:00")]),
    ("saint-marcel-eglise", "Saint-Marcel — place de l'église", "Saint-Marcel", 46.7753, 4.8893, 10,
     [_slot("wednesday", "09:30", "11:30")]),
    ("chatenoy-le-royal", "Châtenoy-le-Royal — centre commercial", "Châtenoy-le-Royal", 46.7873, 4.8118, 10,
     [_slot("friday", "09:30", "11:30")]),
    ("champforgeuil", "Champforgeuil — salle des fêtes", "Champforgeuil", 46.8168, 4.8334, 6,
     [_slot("monday", "09:30", "11:00")]),
    ("crissey", "Crissey — groupe scolaire", "Crissey", 46.8157, 4.8828, 6, [_slot("saturday", "14:00", "15:30")]),
    ("lux", "Lux — place de la mairie", "Lux", 46.7560, 4.8561, 6, [_slot("wednesday", "16:30", "18:00")]),
    ("fragnes-la-loyere", "Fragnes-La Loyère — salle polyvalente", "Fragnes-La Loyère", 46.8392, 4.8382, 6,
     [_slot("thursday", "14:00", "15:30")]),
]


def load_tour(url: str) -> int:
    """The bibliobus stops, in the bibliobus database, through its own `tour.add_stop`: each is announced with
    `stop_registered` through the outbox, so reservations offers it as a pickup point once the bibliobus
    service runs. Stops already there are left alone."""
    from datetime import UTC, datetime

    from services.bibliobus import tour
    from services.bibliobus.models import Outbox, Stop
    from services.bibliobus.policy import Policy
    from services.common.database import make_engine
    from services.common.relay import Events

    events, policy, now = Events("bibliobus", Outbox, kick=lambda: None), Policy({}), datetime.now(UTC)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        for stop_id, name, district, lat, lon, capacity, visits in TOUR_STOPS:
            if session.get(Stop, stop_id) is None:
                tour.add_stop(session, events, policy, {
                    "id": stop_id, "name": name, "district": district, "latitude": lat, "longitude": lon,
                    "capacity_per_visit": capacity, "visits": visits}, now)
    engine.dispose()
    return len(TOUR_STOPS)


def load_pickup_points(session: Session) -> int:
    for point in PICKUP_POINTS:
        session.merge(PickupPoint(active=True, **point))
    return len(PICKUP_POINTS)


def _isbn13(rng: random.Random) -> str:
    digits = [9, 7, 8, 2] + [rng.randint(0, 9) for _ in range(8)]
    check = (10 - sum(d * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits)) % 10) % 10
    return "".join(map(str, digits + [check]))


def catalogue_rows(titles: int, seed: int = 7) -> Iterator[dict]:
    """CSV-shaped rows (one per copy) for `services.inventory.domain.parse_catalogue`."""
    rng = random.Random(seed)
    combos = [(s, c) for s in _SUBJECTS for c in _COMPLEMENTS]
    rng.shuffle(combos)
    barcode = 100000
    for n in range(titles):
        material = rng.choice(_MATERIALS)
        subject, complement = combos[n % len(combos)]
        title = f"{subject} {complement}" + (f", tome {n // len(combos) + 1}" if n >= len(combos) else "")
        author = rng.choice(_AUTHORS)
        isbn = _isbn13(rng) if material in ("book", "comic") else ""
        shelf = f"{_SHELVES[material]} {author.split()[-1][:3].upper()} {rng.randint(1, 40)}"
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
            barcode += 1
            site = rng.choice(["central", "central", "neighbourhood"])
            yield {"isbn": isbn, "title": title, "author": author, "material": material,
                   "barcode": f"B{barcode}", "site": site, "shelf_mark": shelf,
                   "plastic_cover": "yes" if material in ("comic", "dvd") else ""}


def to_csv(rows: list[dict], progress: Callable[[int], None] | None = None) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["isbn", "title", "author", "material", "barcode", "site",
                                             "shelf_mark", "plastic_cover"])
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
        if progress:
            progress(1)
    return out.getvalue()
