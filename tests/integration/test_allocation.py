"""Allocation in batches (`services.inventory.allocation`) on PostgreSQL: the rules of one reservation at a time
hold for many in one transaction, and two batches at once never hand a copy to two lines."""

import uuid

import eventlet
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.database import make_engine
from services.inventory.allocation import Request, allocate
from services.inventory.models import Copy, CopyHistory, Title, WaitlistEntry


@pytest.fixture
def engine(make_database):
    engine = make_engine(make_database("inventory"))
    yield engine
    engine.dispose()


def shelve(engine, copies: dict[str, list[tuple[str, str]]]) -> None:
    """`{title id: [(barcode, site), …]}`"""
    with Session(engine) as session, session.begin():
        for title_id, held in copies.items():
            session.add(Title(id=title_id, title=f"Title {title_id}", author="A. Author", material="book"))
            session.flush()
            session.add_all(Copy(barcode=b, title_id=title_id, site=site, shelf_mark="R 1") for b, site in held)


def request(site: str, *title_ids: str) -> Request:
    return Request(str(uuid.uuid4()), site, [{"line_id": str(uuid.uuid4()), "title_id": t} for t in title_ids])


def run(engine, requests: list[Request]) -> list[tuple[list[dict], list[dict]]]:
    with Session(engine) as session, session.begin():
        return allocate(session, requests)


def test_a_batch_is_served_in_arrival_order_home_site_first(engine):
    shelve(engine, {"t1": [("B-2", "central"), ("A-1", "neighbourhood")], "t2": [("C-1", "central")]})
    first, second, third, fourth = (request("central", "t1"), request("central", "t1", "t2"),
                                    request("neighbourhood", "t1"), request("central", "t1"))
    outcomes = run(engine, [first, second, third, fourth])

    assert [[line["barcode"] for line in allocated] for allocated, _ in outcomes] == [["B-2"], ["A-1", "C-1"], [], []]
    assert outcomes[0][0][0]["needs_transfer"] is False and outcomes[1][0][0]["needs_transfer"] is True
    assert [[line["waitlist_position"] for line in waiting] for _, waiting in outcomes] == [[], [], [1], [2]]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(CopyHistory)) == 3
        assert session.scalars(select(Copy.line_id).where(Copy.barcode == "A-1")).one() == second.lines[0]["line_id"]

    later = request("central", "t1")  # the waitlist goes on from where it was
    assert run(engine, [later]) == [([], [{"line_id": later.lines[0]["line_id"], "title_id": "t1", "title": None,
                                           "waitlist_position": 3}])]


def test_a_line_already_handled_is_left_alone(engine):
    shelve(engine, {"t1": [("A-1", "central"), ("A-2", "central")]})
    placed = request("central", "t1")
    assert run(engine, [placed])[0][0][0]["barcode"] == "A-1"
    assert run(engine, [placed, placed]) == [([], []), ([], [])]  # delivered again, twice: no second copy
    twice = request("central", "t1")
    assert [len(allocated) for allocated, _ in run(engine, [twice, twice])] == [1, 0]  # named twice in a batch
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Copy).where(Copy.status == "available")) == 0


def test_concurrent_batches_never_share_a_copy(engine):
    titles = [f"t{n}" for n in range(5)]
    shelve(engine, {t: [(f"{t}-{c}", "central") for c in range(3)] for t in titles})
    # Each batch wants every title, in its own order: the locks are still taken in one order.
    batches = [[request("central", *(titles[k:] + titles[:k])) for _ in range(4)] for k in range(4)]

    threads = [eventlet.spawn(run, engine, batch) for batch in batches]
    outcomes = [outcome for thread in threads for outcome in thread.wait()]

    barcodes = [line["barcode"] for allocated, _ in outcomes for line in allocated]
    assert len(barcodes) == len(set(barcodes)) == 15  # every copy once
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(WaitlistEntry)) == 16 * 5 - 15
        positions = session.execute(select(WaitlistEntry.title_id, func.count()).group_by(WaitlistEntry.title_id))
        assert dict(positions.tuples().all()) == {t: 13 for t in titles}
    waiting = sorted((line["title_id"], line["waitlist_position"]) for _, w in outcomes for line in w)
    assert waiting == sorted((t, p) for t in titles for p in range(1, 14))
