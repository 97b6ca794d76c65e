"""Inventory's rules, called directly: copy choice, quarantine, ISBNs, catalogue rows."""

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import Invalid
from services.inventory.domain import (
    QuarantinePolicy,
    allocates_now,
    availability,
    normalise_isbn,
    parse_catalogue,
    parse_material_hours,
    pick_copy,
)
from tests.helpers import CSV_HEADER

SITES = ["central", "neighbourhood"]


def shelf_of(**sites: list[str]) -> dict[str, list[dict]]:
    """Copies on the shelf per site, numbered in one barcode order across sites (as `allocation` reads them)."""
    ordered = sorted(barcode for barcodes in sites.values() for barcode in barcodes)
    return {site: [{"barcode": b, "site": site, "order": ordered.index(b)} for b in sorted(barcodes)]
            for site, barcodes in sites.items()}


def test_a_copy_at_the_pickup_site_first_then_the_lowest_barcode_elsewhere():
    shelf = shelf_of(central=["C-1", "C-2"], neighbourhood=["N-9"], annex=["A-5"])
    assert pick_copy(shelf, "neighbourhood")["barcode"] == "N-9"  # no transfer, though its barcode is highest
    assert pick_copy(shelf, "neighbourhood")["barcode"] == "A-5"  # then the lowest barcode of any other site
    assert [pick_copy(shelf, "neighbourhood")["barcode"] for _ in range(2)] == ["C-1", "C-2"]
    assert pick_copy(shelf, "neighbourhood") is None and pick_copy({}, "central") is None


def test_a_picked_copy_leaves_the_shelf():
    shelf = shelf_of(central=["C-1"])
    assert pick_copy(shelf, "central")["barcode"] == "C-1"
    assert shelf == {"central": []} and pick_copy(shelf, "central") is None


def test_a_placement_waiting_for_its_bibliobus_stop_takes_no_copy_yet():
    assert allocates_now({"reservation_id": "r1", "waiting_for_stop": False})
    assert not allocates_now({"reservation_id": "r1", "waiting_for_stop": True})


def test_quarantine_length_per_material_and_plastic_cover():
    policy = QuarantinePolicy(default_hours=72, by_material={"dvd": 120}, plastic_cover_hours=96)
    returned = datetime(2026, 4, 1, 9, tzinfo=UTC)
    assert policy.release_at(returned, "book", False) == returned + timedelta(hours=72)
    assert policy.release_at(returned, "book", True) == returned + timedelta(hours=96)
    assert policy.release_at(returned, "dvd", True) == returned + timedelta(hours=120)


def test_material_hours_parse_and_refuse_unknown_material():
    assert parse_material_hours("dvd:120,cd:100") == {"dvd": 120.0, "cd": 100.0}
    with pytest.raises(ValueError):
        parse_material_hours("vinyl:3")


def test_isbn_normalised_to_13_digits_and_checked():
    assert normalise_isbn("2-07-036822-X") == "9782070368228"
    assert normalise_isbn("978-2-07-036822-8") == "9782070368228"
    assert normalise_isbn("  ") is None
    with pytest.raises(Invalid, match="invalid ISBN"):
        normalise_isbn("978-2-07-036822-9")


def test_catalogue_rows_parsed():
    rows = parse_catalogue(CSV_HEADER + "207036822X,L'Étranger,Camus,book,B1,central,R CAM 1\n", SITES)
    assert rows[0].isbn == "9782070368228" and rows[0].barcode == "B1" and rows[0].line == 2


def test_catalogue_reports_every_bad_row_by_line_number():
    text = CSV_HEADER + ("207036822X,Ok,Camus,book,B1,central,R 1\n"
                     "123,Bad isbn,X,book,B2,central,R 1\n"
                     ",No site,X,book,B3,moon,R 1\n"
                     ",Dup,X,book,B1,central,R 1\n")
    with pytest.raises(Invalid) as caught:
        parse_catalogue(text, SITES)
    assert [r["line"] for r in caught.value.details["rows"]] == [3, 4, 5]
    assert "nothing was imported" in caught.value.message


def test_catalogue_needs_its_columns():
    with pytest.raises(Invalid, match="lacks columns: shelf_mark"):
        parse_catalogue("isbn,title,author,material,barcode,site\n", SITES)


def test_availability_per_site():
    table = availability([("central", "available"), ("central", "on_loan"), ("neighbourhood", "available")], SITES)
    assert table == {"central": {"copies": 2, "available": 1}, "neighbourhood": {"copies": 1, "available": 1}}
