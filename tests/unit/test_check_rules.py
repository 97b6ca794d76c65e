"""`drive check`'s rule (services.check.compare): what counts as the services agreeing."""

from services.check import compare


def line(reservation: str, line_id: str, title: str = "t1", status: str = "allocated") -> dict:
    return {"reservation_id": reservation, "line_id": line_id, "title_id": title, "status": status}


def hold(reservation: str, line_id: str, title: str = "t1") -> dict:
    return {"reservation_id": reservation, "line_id": line_id, "title_id": title, "barcode": f"B-{line_id}"}


def kinds(report) -> list[tuple[str, str]]:
    return [(f.kind, f.subject) for f in report.findings]


def test_every_open_line_holding_what_reservations_says_is_agreement():
    report = compare([line("r1", "l1"), line("r2", "l2", status="waitlisted"), line("r3", "l3", "t2")],
                     [hold("r1", "l1"), hold("r3", "l3", "t2")], [hold("r2", "l2")])
    assert report.clean
    assert [(t.title_id, t.open_lines, t.copies_held, t.waiting) for t in report.titles] == [
        ("t1", 2, 1, 1), ("t2", 1, 1, 0)]


def test_copies_and_places_held_for_closed_lines_are_found_and_repairable():
    report = compare([line("r2", "l2")], [hold("r1", "l1"), hold("r2", "l2")], [hold("r9", "l9")])
    assert kinds(report) == [("held_for_closed_line", "r1"), ("waiting_for_closed_line", "r9")]
    assert not report.clean and report.to_reannounce() == ["r1", "r9"]
    assert [(t.open_lines, t.copies_held, t.waiting, t.agrees) for t in report.titles] == [(1, 2, 1, False)]


def test_an_open_line_that_inventory_lost_is_found_but_not_repaired_by_an_event():
    report = compare([line("r1", "l1"), line("r2", "l2", status="waitlisted")], [hold("r2", "l2")], [])
    assert kinds(report) == [("line_holds_nothing", "r1"), ("line_differs", "r2")]
    assert report.to_reannounce() == []


def test_a_pending_line_agrees_with_whatever_inventory_holds_its_answer_may_be_on_its_way():
    pending = [line("r1", "l1", status="pending"), line("r2", "l2", status="pending")]
    assert compare(pending, [hold("r1", "l1")], []).findings == []
    assert not compare(pending, [hold("r1", "l1")], []).clean  # yet the title's counts differ: 2 open, 1 held


def test_stuck_placements_are_said_again():
    report = compare([line("r1", "l1", status="pending")], [], [], stuck_placed=["r1"])
    assert kinds(report) == [("stuck_placed", "r1")] and report.to_reannounce() == ["r1"]


def test_an_event_said_again_is_no_news_for_patrons():
    from services.notifications.domain import should_announce

    cancelled = {"reservation_id": "r1", "cancelled_by": "staff"}
    assert should_announce("reservation_cancelled", cancelled)
    assert not should_announce("reservation_cancelled", {**cancelled, "reannounced": True})
    assert not should_announce("reservation_expired", {"reservation_id": "r1", "reannounced": True})
