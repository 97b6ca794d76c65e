"""A reservation closed (cancelled, expired) around its allocation, on two replicas of inventory: whatever the
order its events are handled in, inventory ends up holding no copy and no waitlist place for it, and a copy it
frees goes to the next live line.

The interleavings are forced, not hoped for. "Before" and "after" wait for the first event to be handled (its
inbox row) before publishing the second. "During" (PostgreSQL) holds a lock on `copy_history` from the test, so
the allocation stops mid-transaction at its first history row, with its batch's copies taken but not committed;
the closing event is published then, and the lock is let go once the closing handler has either finished or is
itself seen waiting in `pg_locks`. On SQLite a writer excludes every other (BEGIN IMMEDIATE): "during" cannot
happen there, so it runs the other orders."""

import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from kombu import Connection, Exchange, Producer
from nameko.testing.utils import find_free_port
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from services.common.database import make_engine
from services.common.envelope import REGISTRY
from services.common.messaging import DEAD_LETTER_QUEUE, declare_topology
from services.common.migrate import upgrade
from services.inventory.models import Copy, Inbox, Title, WaitlistEntry
from services.inventory.service import InventoryService
from tests.helpers import wait_for
from tests.integration.helpers import service_config

POINT = {"id": "central-adult", "name": "Centrale, banque adultes", "kind": "counter", "site": "central"}


class Scene:
    """Two titles with one copy each; reservations made of lines; events published as reservations would."""

    def __init__(self, amqp_uri: str, engine, start) -> None:
        self.amqp_uri, self.engine, self.start = amqp_uri, engine, start
        self.lines: dict[str, list[dict]] = {}
        self.closed: set[str] = set()
        self.published: list[str] = []
        self.types: dict[str, str] = {}
        with Session(engine) as session, session.begin():
            for title_id in ("t1", "t2"):
                session.add(Title(id=title_id, title=f"Title {title_id}", author="A. Author", material="book"))
                session.flush()
                session.add(Copy(barcode=f"{title_id}-1", title_id=title_id, site="central", shelf_mark="R 1"))

    def reservation(self, *title_ids: str) -> str:
        reservation_id = str(uuid.uuid4())
        self.lines[reservation_id] = [{"line_id": str(uuid.uuid4()), "title_id": t} for t in title_ids]
        return reservation_id

    def event(self, type_: str, reservation_id: str):
        data = {"reservation_id": reservation_id, "patron": "C-1", "pickup_point": POINT,
                "lines": self.lines[reservation_id]}
        if type_ == "reservation_placed":
            data |= {"channel": "web", "placed_at": datetime.now(UTC), "waiting_for_stop": False}
        elif type_ == "reservation_cancelled":
            data |= {"cancelled_by": "patron"}
        elif type_ == "reservation_expired":
            data |= {"pickup_deadline": datetime.now(UTC)}
        if type_ in ("reservation_cancelled", "reservation_expired"):
            self.closed.add(reservation_id)
        return REGISTRY.build("reservations", type_, data)

    def publish(self, *events) -> list[str]:
        with Connection(self.amqp_uri) as conn:
            producer = Producer(conn.default_channel, exchange=Exchange("reservations.events", type="topic"))
            for event in events:
                producer.publish(event.to_message(), routing_key=event.type, serializer="json")
                self.published.append(event.id)
                self.types[event.id] = event.type
        return [event.id for event in events]

    def handled(self, event_ids: list[str]) -> bool:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).where(Inbox.event_id.in_(event_ids))) == len(event_ids)

    def wait_handled(self, event_ids: list[str] | None = None) -> None:
        ids = event_ids or self.published
        try:
            wait_for(lambda: self.handled(ids), timeout=60, what=f"inventory to handle {len(ids)} events")
        except AssertionError as exc:  # say which, and whether the broker gave up on them
            with Session(self.engine) as session:
                done = set(session.scalars(select(Inbox.event_id).where(Inbox.event_id.in_(ids))))
            with Connection(self.amqp_uri) as conn:
                dead = conn.default_channel.queue_declare(DEAD_LETTER_QUEUE, passive=True).message_count
            missing = [self.types[i] for i in ids if i not in done]
            raise AssertionError(f"{exc}: not handled {missing}, {dead} in the dead-letter queue") from None

    def assert_agreement(self) -> None:
        """Per title: copies off the shelf = open lines holding one, waitlist = open lines waiting; no copy on the
        shelf while an open line waits for its title."""
        with Session(self.engine) as session:
            held = {(c.reservation_id, c.line_id): c.title_id for c in session.scalars(
                select(Copy).where(Copy.status == "allocated"))}
            waiting = {(w.reservation_id, w.line_id): w.title_id for w in session.scalars(
                select(WaitlistEntry).where(WaitlistEntry.status == "waiting"))}
            on_shelf = Counter(session.scalars(select(Copy.title_id).where(Copy.status == "available")))
        open_lines = {(r, line["line_id"]): line["title_id"] for r, lines in self.lines.items()
                      if r not in self.closed for line in lines}
        assert not [key for key in {**held, **waiting} if key[0] in self.closed], "held for a closed reservation"
        assert held.keys() | waiting.keys() == open_lines.keys()
        assert not held.keys() & waiting.keys()
        assert not [t for t in waiting.values() if on_shelf[t]], "a copy on the shelf while an open line waits"


def start_inventory(container_factory, config: dict, replicas: int) -> None:
    for _ in range(replicas):
        container_factory(InventoryService, {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{find_free_port()}"}).start()


@pytest.fixture(params=["postgresql", "sqlite"])
def inventory_url(request, make_database, tmp_path):
    if request.param == "postgresql":
        return make_database("inventory")
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    upgrade("inventory", url)
    return url


@pytest.fixture
def scene(inventory_url, container_factory, rabbit_config):
    engine = make_engine(inventory_url, pool_size=4)
    config = service_config(rabbit_config, inventory_url, EVENT_BATCH_LINGER_SECONDS=0.1)
    declare_topology([InventoryService], config)  # queues first: events published before the start are kept
    # `scene.start()`: two replicas of inventory, started when the test says (see the "during" test).
    yield Scene(rabbit_config["AMQP_URI"], engine,
                lambda: start_inventory(container_factory, config, replicas=2))
    engine.dispose()


ENDINGS = ["reservation_cancelled", "reservation_expired"]
STARTS = ["reservation_placed", "reservation_released_to_allocation"]


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("start", STARTS)
def test_closed_before_its_placement_is_handled_takes_nothing(scene, start, ending):
    scene.start()
    closed, live = scene.reservation("t1", "t2"), scene.reservation("t1")
    scene.wait_handled(scene.publish(scene.event(ending, closed)))
    scene.publish(scene.event(start, closed), scene.event("reservation_placed", live))
    scene.wait_handled()
    scene.assert_agreement()
    with Session(scene.engine) as session:  # the live line behind it got the copy
        assert session.scalars(select(Copy.reservation_id).where(Copy.barcode == "t1-1")).one() == live


@pytest.mark.parametrize("ending", ENDINGS)
def test_closed_after_its_allocation_gives_back_to_the_next_live_line(scene, ending):
    scene.start()
    closed, live, other = scene.reservation("t1", "t2"), scene.reservation("t1"), scene.reservation("t2")
    scene.publish(*(scene.event("reservation_placed", r) for r in (closed, live, other)))
    scene.wait_handled()
    scene.wait_handled(scene.publish(scene.event(ending, closed)))
    scene.assert_agreement()


def lock_waiters(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                                "WHERE NOT l.granted AND a.datname = current_database()"))


@pytest.mark.parametrize("inventory_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("shape", ["copies", "waitlist"])
def test_closed_during_its_allocation_batch(scene, shape):
    """`copies`: the closed reservation's batch is taking its copies. `waitlist`: the live line takes the last
    copy first and the closed one is being queued behind it. The placements are queued before the replicas
    start, so the first replica to subscribe takes them all in one batch: one allocation under way, not two."""
    if shape == "copies":
        closed, live = scene.reservation("t1", "t2"), scene.reservation("t1")
        order = [closed, live]
    else:
        live, closed, other = scene.reservation("t1"), scene.reservation("t1", "t2"), scene.reservation("t2")
        order = [live, closed, other]
    blocker = scene.engine.connect()
    transaction = blocker.begin()
    blocker.execute(text("LOCK TABLE copy_history IN SHARE MODE"))  # allocations stop at their first history row
    try:
        scene.publish(*(scene.event("reservation_placed", r) for r in order))
        scene.start()
        wait_for(lambda: lock_waiters(scene.engine) >= 1, timeout=20, what="the allocation to be under way")
        cancel = scene.publish(scene.event("reservation_cancelled", closed))
        # Either the cancellation went through beside the open allocation, or it waits for it: then let go.
        wait_for(lambda: scene.handled(cancel) or lock_waiters(scene.engine) >= 2, timeout=20,
                 what="the cancellation to be handled or to wait")
    finally:
        transaction.rollback()
        blocker.close()
    scene.wait_handled()
    scene.assert_agreement()
