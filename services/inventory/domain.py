"""Inventory's rules: which copy a line gets, how long quarantine lasts, what a catalogue row must hold,
availability per site. Plain functions on plain values: no nameko, no session."""

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stdnum import isbn as isbn_rules

from services.common.errors import Invalid
from services.events import MATERIALS


def allocates_now(placement: Mapping[str, Any]) -> bool:
    """A reservation placed at a closed bibliobus stop takes no copy yet: `reservation_released_to_allocation`
    follows when the stop opens."""
    return not placement["waiting_for_stop"]


def pick_copy(sites: dict[str, list[dict]], pickup_site: str) -> dict | None:
    """Which copy a line gets, taken off `sites` (site → copies on the shelf, each in the database's barcode order
    `order`): one at the pickup site first (no transfer), else the lowest barcode elsewhere; None: none left."""
    home = sites.get(pickup_site)
    if home:
        return home.pop(0)
    heads = [copies for site, copies in sites.items() if site != pickup_site and copies]
    return min(heads, key=lambda copies: copies[0]["order"]).pop(0) if heads else None


@dataclass(frozen=True)
class QuarantinePolicy:
    default_hours: float = 72
    by_material: Mapping[str, float] = None  # type: ignore[assignment]
    plastic_cover_hours: float | None = None

    def hours_for(self, material: str, plastic_cover: bool) -> float:
        hours = (self.by_material or {}).get(material, self.default_hours)
        if plastic_cover and self.plastic_cover_hours is not None:
            hours = max(hours, self.plastic_cover_hours)
        return hours

    def release_at(self, returned_at: datetime, material: str, plastic_cover: bool) -> datetime:
        return returned_at + timedelta(hours=self.hours_for(material, plastic_cover))


def parse_material_hours(text: str) -> dict[str, float]:
    """`"dvd:120,cd:120"` → {"dvd": 120.0, "cd": 120.0}."""
    hours = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        material, _, value = part.partition(":")
        if material not in MATERIALS:
            raise ValueError(f"unknown material {material!r} in quarantine hours")
        hours[material] = float(value)
    return hours


def normalise_isbn(raw: str | None) -> str | None:
    """An ISBN-13 without separators, or None; raises Invalid for a number that fails its checksum."""
    if raw is None or not raw.strip():
        return None
    try:
        return isbn_rules.to_isbn13(isbn_rules.validate(raw))
    except Exception as exc:  # stdnum raises several ValidationError kinds
        raise Invalid(f"invalid ISBN {raw!r}: {exc}", field="isbn") from exc


@dataclass(frozen=True)
class CatalogueRow:
    line: int
    isbn: str | None
    title: str
    author: str
    material: str
    barcode: str
    site: str
    shelf_mark: str
    plastic_cover: bool


CSV_COLUMNS = ("isbn", "title", "author", "material", "barcode", "site", "shelf_mark")


def parse_catalogue(text: str, sites: Sequence[str]) -> list[CatalogueRow]:
    """Every row checked before anything is written; all problems reported with their line numbers."""
    # newline="": the csv module then reads CR, LF and CRLF line ends alike (a bare CR broke it).
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise Invalid(f"CSV header lacks columns: {', '.join(missing)}", expected=list(CSV_COLUMNS))
    rows, errors, barcodes = [], [], set()
    for line, raw in enumerate(reader, start=2):
        try:
            rows.append(_row(line, raw, sites, barcodes))
        except Invalid as exc:
            errors.append({"line": line, "error": exc.message})
    if errors:
        raise Invalid(f"{len(errors)} bad row(s); nothing was imported", rows=errors)
    if not rows:
        raise Invalid("the CSV holds no rows")
    return rows


def _row(line: int, raw: Mapping[str, str], sites: Sequence[str], barcodes: set[str]) -> CatalogueRow:
    value = {k: (raw.get(k) or "").strip() for k in CSV_COLUMNS}
    for required in ("title", "author", "material", "barcode", "site", "shelf_mark"):
        if not value[required]:
            raise Invalid(f"{required} is empty")
    if value["material"] not in MATERIALS:
        raise Invalid(f"material {value['material']!r} is not one of {', '.join(MATERIALS)}")
    if value["site"] not in sites:
        raise Invalid(f"site {value['site']!r} is not one of {', '.join(sites)}")
    if value["barcode"] in barcodes:
        raise Invalid(f"barcode {value['barcode']} appears twice in the file")
    barcodes.add(value["barcode"])
    plastic = (raw.get("plastic_cover") or "").strip().lower() in {"1", "yes", "true", "oui"}
    return CatalogueRow(line, normalise_isbn(value["isbn"]), value["title"], value["author"], value["material"],
                        value["barcode"], value["site"], value["shelf_mark"], plastic)


def availability(copies: Sequence[tuple[str, str]], sites: Sequence[str]) -> dict[str, dict[str, int]]:
    """`[(site, status), …]` → per site: copies held and copies on the shelf now."""
    table = {site: {"copies": 0, "available": 0} for site in sites}
    for site, status in copies:
        entry = table.setdefault(site, {"copies": 0, "available": 0})
        entry["copies"] += 1
        entry["available"] += status == "available"
    return table


def search_terms(q: str) -> list[str]:
    return [t for t in re.split(r"\s+", q.strip()) if t][:6]
