"""Demo data shaped like the reference network: a central library with an adult and a youth counter, a
neighbourhood library, and a catalogue of a few hundred titles with copies spread over the sites."""

import random
from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

from services.reservations.models import PickupPoint

PICKUP_POINTS = [
    {"id": "central-adult", "name": "Médiathèque centrale — espace adultes", "kind": "counter", "site": "central"},
    {"id": "central-youth", "name": "Médiathèque centrale — espace jeunesse", "kind": "counter", "site": "central"},
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
