"""The library's figures: grouping by local day, pickup point and channel, medians, slot occupancy (no broker,
no database: plain records in, plain values out)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.reservations.figures import (
    COUNTERS,
    BookingFact,
    ReservationFact,
    SelectionFact,
    aggregate,
    places_by_day,
)
from services.reservations.opening_days import Calendar, parse_week

PARIS = ZoneInfo("Europe/Paris")
ZONE = "Europe/Paris"


def utc(y: int, m: int, d: int, h: int, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, s, tzinfo=UTC)


def row(report: dict, day: date, point: str, channel: str) -> dict:
    found = [r for r in report["rows"] if (r["day"], r["pickup_point"], r["channel"]) == (day, point, channel)]
    assert len(found) == 1, report["rows"]
    return found[0]


def test_empty_input_gives_no_rows_and_zero_totals():
    report = aggregate(date(2026, 3, 1), date(2026, 3, 7), ZONE, [], [], [], {})
    assert report["rows"] == [] and report["slots"] == []
    assert report["first"] == date(2026, 3, 1) and report["last"] == date(2026, 3, 7)
    totals = report["totals"]
    assert {name: totals[name] for name in COUNTERS} == dict.fromkeys(COUNTERS, 0)
    assert totals["median_prepare_minutes"] is None and totals["median_wait_seconds"] is None
    assert (totals["places"], totals["booked"], totals["occupancy"]) == (0, 0, None)


def test_a_moment_counts_on_its_local_day_across_midnight():
    # Winter (UTC+1): 23:30 UTC on the 10th is 00:30 on the 11th in Paris; 22:59 UTC is still the 10th.
    # Summer (UTC+2): 22:30 UTC on 06-10 is 00:30 on 06-11.
    reservations = [
        ReservationFact("central-adult", "web", "placed", utc(2026, 3, 10, 23, 30)),
        ReservationFact("central-adult", "web", "placed", utc(2026, 3, 10, 22, 59)),
        ReservationFact("central-adult", "web", "placed", utc(2026, 6, 10, 22, 30)),
    ]
    report = aggregate(date(2026, 3, 1), date(2026, 6, 30), ZONE, reservations, [])
    assert [(r["day"], r["reservations_placed"]) for r in report["rows"]] == [
        (date(2026, 3, 10), 1), (date(2026, 3, 11), 1), (date(2026, 6, 11), 1)]
    # The range is of local days: 23:30 UTC on the last day's eve is inside, on the last day is outside.
    edge = aggregate(date(2026, 3, 11), date(2026, 3, 11), ZONE, [
        ReservationFact("p", "web", "placed", utc(2026, 3, 10, 23, 30)),
        ReservationFact("p", "web", "placed", utc(2026, 3, 11, 23, 30))], [])
    assert edge["totals"]["reservations_placed"] == 1


def test_each_fact_counts_on_the_day_of_its_own_moment_per_point_and_channel():
    day1, day2 = date(2026, 3, 10), date(2026, 3, 11)
    reservations = [
        # Placed on the 10th by phone, collected on the 11th after a 2-minute wait outside.
        ReservationFact("central-adult", "phone", "collected", utc(2026, 3, 10, 9), closed_at=utc(2026, 3, 11, 10),
                        arrived_at=utc(2026, 3, 11, 9, 58)),
        # Placed and collected on the 10th, on the web, nobody said "I'm here": no wait sample.
        ReservationFact("central-adult", "web", "collected", utc(2026, 3, 10, 8), closed_at=utc(2026, 3, 10, 15)),
        # Expired on the 11th: a no-show at the youth counter.
        ReservationFact("central-youth", "web", "expired", utc(2026, 3, 1, 8), closed_at=utc(2026, 3, 11, 17)),
        # Cancelled: only its placement counts.
        ReservationFact("neighbourhood", "counter", "cancelled", utc(2026, 3, 10, 8), closed_at=utc(2026, 3, 10, 9)),
    ]
    selections = [
        SelectionFact("central-adult", "phone", "prepared", utc(2026, 3, 10, 9), utc(2026, 3, 10, 9, 30)),
        SelectionFact("central-adult", "phone", "nothing_available", utc(2026, 3, 10, 10), utc(2026, 3, 11, 10)),
        SelectionFact("central-adult", "phone", "requested", utc(2026, 3, 11, 10)),
    ]
    report = aggregate(day1, day2, ZONE, reservations, selections)
    assert [(r["day"], r["pickup_point"], r["channel"]) for r in report["rows"]] == [
        (day1, "central-adult", "phone"), (day1, "central-adult", "web"), (day1, "neighbourhood", "counter"),
        (day2, "central-adult", "phone"), (day2, "central-youth", "web")]
    first = row(report, day1, "central-adult", "phone")
    assert (first["reservations_placed"], first["selections_asked"], first["selections_prepared"],
            first["selections_nothing_available"], first["median_prepare_minutes"], first["collections"]) == (
        1, 2, 1, 0, 30.0, 0)
    second = row(report, day2, "central-adult", "phone")
    assert (second["reservations_placed"], second["selections_asked"], second["selections_prepared"],
            second["selections_nothing_available"], second["median_prepare_minutes"]) == (0, 1, 1, 1, 1440.0)
    assert (second["collections"], second["median_wait_seconds"]) == (1, 120.0)
    web = row(report, day1, "central-adult", "web")
    assert (web["reservations_placed"], web["collections"], web["median_wait_seconds"]) == (1, 1, None)
    assert row(report, day2, "central-youth", "web")["no_shows"] == 1
    cancelled = row(report, day1, "neighbourhood", "counter")
    assert cancelled["reservations_placed"] == 1 and cancelled["collections"] == cancelled["no_shows"] == 0
    # Outside the range (placed 03-01), the expired reservation counts only as a no-show.
    totals = report["totals"]
    assert {name: totals[name] for name in COUNTERS} == {
        "reservations_placed": 3, "selections_asked": 3, "selections_prepared": 2,
        "selections_nothing_available": 1, "collections": 2, "no_shows": 1}
    assert totals["median_prepare_minutes"] == 735.0  # (30 + 1440) / 2: every sample of the range
    assert totals["median_wait_seconds"] == 120.0


def test_medians_of_odd_and_even_samples():
    day = date(2026, 3, 10)

    def collected(wait: int) -> ReservationFact:
        closed = utc(2026, 3, 10, 10)
        return ReservationFact("p", "web", "collected", utc(2026, 3, 9, 10), closed, closed - timedelta(seconds=wait))

    odd = aggregate(day, day, ZONE, [collected(w) for w in (300, 10, 45)], [])
    assert odd["rows"][0]["median_wait_seconds"] == 45.0
    even = aggregate(day, day, ZONE, [collected(w) for w in (10, 20, 30, 41)], [])
    assert even["rows"][0]["median_wait_seconds"] == 25.0 and even["totals"]["median_wait_seconds"] == 25.0

    def prepared(minutes: float) -> SelectionFact:
        done = utc(2026, 3, 10, 12)
        return SelectionFact("p", "phone", "prepared", done - timedelta(minutes=minutes), done)

    report = aggregate(day, day, ZONE, [], [prepared(m) for m in (7, 8.5)])
    assert report["rows"][0]["median_prepare_minutes"] == 7.8  # 7.75, one decimal


def test_slot_occupancy_per_day_and_point():
    first, last = date(2026, 3, 10), date(2026, 3, 12)
    places = {(date(2026, 3, 10), "central-adult"): 20, (date(2026, 3, 11), "central-adult"): 20,
              (date(2026, 3, 10), "neighbourhood"): 0}
    bookings = [BookingFact("central-adult", datetime.combine(date(2026, 3, 10), time(10), PARIS)),
                BookingFact("central-adult", datetime.combine(date(2026, 3, 10), time(10), PARIS)),
                BookingFact("central-adult", datetime.combine(date(2026, 3, 10), time(15), PARIS)),
                BookingFact("central-adult", datetime.combine(date(2026, 3, 11), time(0, 15), PARIS)),
                # A booking on a slot the hours no longer have: booked, no places.
                BookingFact("neighbourhood", datetime.combine(date(2026, 3, 12), time(9), PARIS)),
                BookingFact("central-adult", datetime.combine(date(2026, 3, 13), time(10), PARIS))]  # outside
    report = aggregate(first, last, ZONE, [], [], bookings, places)
    assert report["rows"] == []  # appointments are not rows
    assert [(s["day"], s["pickup_point"], s["places"], s["booked"], s["occupancy"]) for s in report["slots"]] == [
        (date(2026, 3, 10), "central-adult", 20, 3, 0.15), (date(2026, 3, 11), "central-adult", 20, 1, 0.05),
        (date(2026, 3, 12), "neighbourhood", 0, 1, None)]
    assert (report["totals"]["places"], report["totals"]["booked"], report["totals"]["occupancy"]) == (40, 5, 0.125)


def test_places_are_the_calendars_slots_at_their_capacity():
    week = parse_week({"tuesday": ["10:00-12:00"], "wednesday": ["10:00-11:00", "14:00-15:00"]})
    calendar = Calendar(week, closed_days={date(2026, 3, 18): "inventaire"}, slot_minutes=30)
    tuesday = date(2026, 3, 10)
    # One slot row exists (booked once) at a capacity of 5; the others take the point's default of 2.
    capacities = {datetime.combine(tuesday, time(10, 30), PARIS).astimezone(UTC): 5}
    by_day = places_by_day(calendar, capacities, 2, tuesday, tuesday + timedelta(days=8))
    assert by_day == {tuesday: 3 * 2 + 5, date(2026, 3, 11): 4 * 2, date(2026, 3, 17): 4 * 2}  # 18th closed
    assert places_by_day(calendar, {}, 2, date(2026, 3, 12), date(2026, 3, 16)) == {}
