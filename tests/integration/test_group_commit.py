"""Group commit of placements (services.common.group_commit, circulation.place_all): placements that arrive
together share one transaction; each answers its own refusal; a group that fails goes again one by one; no
answer precedes its group's COMMIT. On PostgreSQL and SQLite.

The interleaving is forced: an outside transaction holds the database (PostgreSQL: an EXCLUSIVE lock on the
reservations table, which a placement's INSERT waits for; SQLite: the write lock), so that a first group waits
in the database while the next placements queue up behind it; they form the next group when it is let go."""

import sqlite3
import uuid
from contextlib import contextmanager
from types import SimpleNamespace

import eventlet
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from services.common.database import make_engine
from services.common.group_commit import GroupCommit
from services.common.messaging import declare_topology
from services.demo import load_pickup_points
from services.reservations.models import CatalogueTitle, Line, Outbox, Reservation
from services.reservations.service import ReservationsService
from tests.helpers import Client, wait_for
from tests.integration.helpers import on_both_databases, publish, service_config  # noqa: F401  (both databases)

DVDS = [f"dvd-{i}" for i in range(4)]
BOOK = "book-1"


@pytest.fixture
def placing(make_database, rabbit_config, container_factory, token):
    """The reservations service alone, with a catalogue replica of four DVDs and a book."""
    url = make_database("reservations")
    engine = make_engine(url, pool_size=2)
    with Session(engine) as session, session.begin():
        load_pickup_points(session)
        session.add_all([CatalogueTitle(id=t, title=f"Film {t}", author="Agnès Varda", material="dvd") for t in DVDS])
        session.add(CatalogueTitle(id=BOOK, title="La Neige", author="Karin Holm", material="book"))
    config = service_config(rabbit_config, url)
    declare_topology([ReservationsService], config)
    container = container_factory(ReservationsService, config)
    container.start()
    committer = next(d for d in container.dependencies if isinstance(d, GroupCommit))
    yield SimpleNamespace(client=Client(f"http://{config['WEB_SERVER_ADDRESS']}", token("staff")),
                          committer=committer, engine=engine, url=url)
    engine.dispose()


@contextmanager
def database_held(placing):
    """An outside transaction that a placement's writes wait for, until the block ends."""
    if placing.engine.dialect.name == "postgresql":
        with placing.engine.connect() as conn:
            conn.execute(text("LOCK TABLE reservations IN EXCLUSIVE MODE"))
            yield
            conn.rollback()
    else:
        conn = sqlite3.connect(placing.url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def post(placing, card, titles, request_id=None):
    headers = {"X-Request-ID": request_id} if request_id else None
    return eventlet.spawn(placing.client.post, "/reservations", headers=headers,
                          json={"patron": card, "pickup_point": "central-adult", "titles": titles})


def group_of(placing, *placements):
    """Submit a first placement that waits in the held database, then `placements` (card, titles) one after the
    other behind it, so that they form one group in this order; let the database go. Returns the answers of
    the first and of each placement."""
    with database_held(placing):
        first = post(placing, "FIRST-1", [BOOK])
        wait_for(lambda: placing.committer.committing == 1, what="the first group in the database")
        waiting = []
        for card, titles, *request_id in placements:
            waiting.append(post(placing, card, titles, *request_id))
            wait_for(lambda n=len(waiting): placing.committer.queue.qsize() == n, what="the placement queued")
        eventlet.sleep(0.3)
        assert not first.dead and all(not w.dead for w in waiting), "answered before the group committed"
    return first.wait(), [w.wait() for w in waiting]


def committed(placing, *where):
    with placing.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Reservation).where(*where)).scalar()


def transaction_of(placing, reservation_ids):
    """PostgreSQL: the transaction that wrote each reservation (its rows' xmin)."""
    with placing.engine.connect() as conn:
        return set(conn.execute(text("SELECT xmin::text FROM reservations WHERE id = ANY(:ids)"),
                                {"ids": list(reservation_ids)}).scalars())


def test_two_placements_of_one_card_in_one_group_hold_to_the_quota(placing):
    # The quota allows three DVDs a card: two and two do not both fit, even in one transaction.
    first, (a, b, other, unknown) = group_of(placing, ("CARD-Q", DVDS[:2]), ("CARD-Q", DVDS[2:]),
                                             ("CARD-R", DVDS[2:]), ("CARD-S", ["no-such-title"]))
    assert first.status_code == 201, first.text
    assert a.status_code == 201, a.text
    assert b.status_code == 400 and "4 dvd" in b.json()["message"], b.text
    assert other.status_code == 201, other.text  # a refusal in the group fails nobody else
    assert unknown.status_code == 400 and unknown.json()["details"]["unknown"] == ["no-such-title"]
    assert committed(placing, Reservation.patron == "CARD-Q") == 1
    assert committed(placing, Reservation.patron == "CARD-R") == 1
    if placing.engine.dialect.name == "postgresql":  # one transaction for the group, another for the first
        assert len(transaction_of(placing, [a.json()["id"], other.json()["id"]])) == 1
        assert transaction_of(placing, [a.json()["id"]]) != transaction_of(placing, [first.json()["id"]])


def test_a_failure_inside_a_group_leaves_the_others_committed_and_answered(placing):
    # A constraint of the database refuses one card's reservation: the group's INSERT fails as a whole.
    with placing.engine.begin() as conn:
        if placing.engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE reservations ADD CONSTRAINT test_no_bad CHECK (patron <> 'BAD-1')"))
        else:
            conn.execute(text("CREATE TRIGGER test_no_bad BEFORE INSERT ON reservations WHEN NEW.patron = 'BAD-1' "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
    ids = {card: str(uuid.uuid4()) for card in ("GOOD-1", "BAD-1", "GOOD-2")}
    first, (good1, bad, good2) = group_of(placing, *((card, [t], ids[card]) for card, t in
                                                     (("GOOD-1", DVDS[0]), ("BAD-1", DVDS[1]), ("GOOD-2", BOOK))))
    assert first.status_code == 201, first.text
    assert (good1.status_code, bad.status_code, good2.status_code) == (201, 500, 201), (good1.text, bad.text)
    assert committed(placing, Reservation.patron.in_(["GOOD-1", "GOOD-2"])) == 2
    assert committed(placing, Reservation.patron == "BAD-1") == 0
    with placing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Line).join(Reservation).where(
            Reservation.patron == "BAD-1")).scalar() == 0
        events = [row.message for row in conn.execute(select(Outbox.message).where(
            Outbox.routing_key == "reservation_placed"))]
    placed = {e["data"]["patron"]: e for e in events}
    assert sorted(e["data"]["patron"] for e in events) == ["FIRST-1", "GOOD-1", "GOOD-2"]  # once each
    # Each event carries its own request's correlation, though one committer wrote them all.
    assert placed["GOOD-1"]["correlation_id"] == ids["GOOD-1"]
    assert placed["GOOD-2"]["correlation_id"] == ids["GOOD-2"]
    assert placed["GOOD-1"]["data"]["reservation_id"] == good1.json()["id"]


def test_an_answer_means_committed(placing):
    # While its group's transaction is open, the placement has no answer (group_of checks it); once answered, its
    # reservation is there for anyone, with its line and its event.
    first, (answer,) = group_of(placing, ("CARD-T", [BOOK]))
    for placed in (first, answer):
        assert placed.status_code == 201, placed.text
        rid = placed.json()["id"]
        assert committed(placing, Reservation.id == rid) == 1
        with placing.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Line).where(Line.reservation_id == rid)).scalar() == 1
    assert answer.json()["lines"][0]["title"] == "La Neige"
    assert answer.json()["status"] == "placed"


# --- the allocation heard back: a batch, one transaction, once per event ----------------------------------------

def allocated(reservation_id, line_id, title_id, barcode):
    return {"reservation_id": reservation_id, "reason": "placement", "lines": [
        {"line_id": line_id, "title_id": title_id, "barcode": barcode, "site": "central", "shelf_mark": "R HOL",
         "needs_transfer": barcode.endswith("T")}]}


def test_allocations_heard_back_take_effect_once_on_their_own_lines_only(placing, rabbit_config):
    one, two = (placing.client.post("/reservations", json={"patron": card, "pickup_point": "central-adult",
                                                           "titles": [BOOK]}).json() for card in ("ALLOC-1", "ALLOC-2"))
    line_one, line_two = one["lines"][0]["id"], two["lines"][0]["id"]
    uri = rabbit_config["AMQP_URI"]
    first = publish(uri, "inventory", "items_allocated", allocated(one["id"], line_one, BOOK, "B-1T"))
    publish(uri, "inventory", "items_allocated", allocated(one["id"], line_two, BOOK, "B-X"))  # not one's line
    publish(uri, "inventory", "items_allocated", allocated(one["id"], line_one, BOOK, "B-9"))  # taken already
    publish(uri, "inventory", "items_allocated", first.data, event=first)  # delivered again
    wait_for(lambda: placing.client.get(f"/reservations/{one['id']}").json()["status"] == "allocated")
    with placing.engine.connect() as conn:
        wait_for(lambda: conn.execute(text("SELECT count(*) FROM inbox")).scalar() >= 3 or conn.rollback(),
                 what="the three distinct events in the inbox")
    seen = placing.client.get(f"/reservations/{one['id']}").json()["lines"][0]
    assert (seen["status"], seen["barcode"], seen["needs_transfer"]) == ("allocated", "B-1T", True)
    other = placing.client.get(f"/reservations/{two['id']}").json()
    assert (other["status"], other["lines"][0]["status"], other["lines"][0]["barcode"]) == ("placed", "pending", None)
