"""Stop switches under concurrency: demand signals, analysts' overrides and the timer's evaluation round landing
on one stop at the same moment, on two replicas of the bibliobus sharing one database (PostgreSQL, and the
embedded SQLite). Exactly one switch per change of state, the revision growing by one per switch.

The interleaving is forced, not hoped for: the test holds the stop's row lock (PostgreSQL: SELECT … FOR UPDATE;
SQLite: the database's write lock), starts the service's transactions one after the other, waits until each
is seen blocked (pg_stat_activity; on SQLite, waiting at BEGIN IMMEDIATE), then lets them all go. PostgreSQL
grants a row lock to its waiters in arrival order, so there the order of the actions is the order given, and
the events expected are exact; SQLite hands its lock to whichever waiter retries first, so there the test
checks what holds in every order."""

import inspect
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import eventlet
import pytest
from nameko.testing.services import entrypoint_hook
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine

from services.bibliobus.models import Decision, NetworkSettings, Outbox
from services.bibliobus.service import BibliobusService
from services.common import database
from services.common.database import make_engine
from services.common.messaging import declare_topology
from services.common.migrate import upgrade
from tests.helpers import Client, EventTap, stop_body, wait_for
from tests.integration.helpers import RULE, service_config

SWITCHES = ("stop_enabled", "stop_disabled")


class PostgresHold:
    """The stop's row lock, held by the test; service transactions wanting it show in pg_stat_activity."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def holding(self) -> Iterator[None]:
        with self.engine.connect() as conn, conn.begin():
            conn.execute(text("SELECT id FROM stops WHERE id = 'lux' FOR UPDATE"))
            yield

    def waiting(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND wait_event_type = 'Lock'")).scalar()


class SqliteHold:
    """SQLite locks the whole database: the test holds its write lock; service transactions wait at BEGIN
    IMMEDIATE (services.common.database), counted here as they enter and leave that wait."""

    def __init__(self, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self.blocked = 0
        real = database._begin_immediate

        def counted(dbapi_conn, *args, **kwargs):
            # The outbox relay's sweeps wait there too: only the actions under test count.
            counts = not any(frame.function == "_publish_batch" for frame in inspect.stack(0))
            self.blocked += counts
            try:
                return real(dbapi_conn, *args, **kwargs)
            finally:
                self.blocked -= counts

        monkeypatch.setattr(database, "_begin_immediate", counted)

    @contextmanager
    def holding(self) -> Iterator[None]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        wait_for(lambda: _try_begin(conn), what="the SQLite write lock")
        try:
            yield
        finally:
            conn.execute("COMMIT")
            conn.close()

    def waiting(self) -> int:
        return self.blocked


def _try_begin(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError:
        return False


@dataclass
class Bus:
    replicas: list  # nameko containers, one database
    staff: list[Client]  # one client per replica
    analyst: list[Client]
    tap: EventTap
    engine: Engine
    hold: PostgresHold | SqliteHold
    exact: bool  # PostgreSQL: waiters get the lock in arrival order
    read: int = 0  # events of the tap already looked at

    def settled(self) -> None:
        """Every committed event published (so the tap has it)."""
        wait_for(lambda: self.scalar(select(func.count()).select_from(Outbox).where(Outbox.sent_at.is_(None)))
                 == 0, what="the outbox drained")

    def scalar(self, query):
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def switches(self) -> list[tuple[str, int, str]]:
        """The switches published since the last call."""
        self.settled()
        seen = self.tap.drain()
        new, self.read = seen[self.read:], len(seen)
        return [(e["type"], e["data"]["revision"], e["data"]["reason"]) for e in new
                if e["type"] in SWITCHES and e["data"]["stop_id"] == "lux"]

    def audited(self) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(
                select(Decision.action, Decision.reason).where(Decision.stop_id == "lux",
                                                              Decision.action.in_(("enabled", "disabled")))
                .order_by(Decision.id))]

    def stop(self) -> dict:
        return self.staff[0].get("/stops/lux").json()

    # --- what people and the timer do --------------------------------------------------------------------

    def interest(self, n: int, card: str) -> Callable[[], None]:
        def act() -> None:
            answer = self.staff[n % 2].post("/stops/lux/interest", json={"patron": card})
            assert answer.status_code == 201, answer.text
        return act

    def override(self, n: int, mode: str) -> Callable[[], None]:
        def act() -> None:
            answer = self.analyst[n % 2].post("/stops/lux/override", json={"mode": mode, "reason": f"essai {mode}"})
            assert answer.status_code == 200, answer.text
        return act

    def thresholds(self, n: int, enable: int) -> Callable[[], None]:
        def act() -> None:
            answer = self.analyst[n % 2].call("PUT", "/thresholds", json={
                "enable_threshold": enable, "disable_threshold": 1, "reason": f"ouvrir à {enable}"})
            assert answer.status_code == 200, answer.text
        return act

    def round(self, n: int) -> Callable[[], None]:
        """The timer's body, run by the replica's container as its timer would (the round is due)."""
        with self.engine.begin() as conn:
            conn.execute(update(NetworkSettings).values(last_round_at=None))

        def act() -> None:
            with entrypoint_hook(self.replicas[n % 2], "evaluation_round") as evaluation_round:
                evaluation_round()
        return act

    def at_once(self, actions: list[Callable[[], None]]) -> None:
        """Start each action while the test holds the lock, waiting until it is blocked before starting the
        next (their order in the lock's queue), then release them all and wait for them to finish."""
        with self.hold.holding():
            threads = []
            for n, act in enumerate(actions):
                threads.append(eventlet.spawn(act))
                wait_for(lambda n=n: self.hold.waiting() >= n + 1, timeout=15,
                         what=f"{n + 1} service transaction(s) waiting for the stop's lock")
        for thread in threads:
            thread.wait()


@pytest.fixture(params=["postgresql", "sqlite"])
def bus(request, make_database, rabbit_config, container_factory, token, tmp_path, monkeypatch):
    if request.param == "postgresql":
        url = make_database("bibliobus")
        engine = make_engine(url, pool_size=2)
        hold = PostgresHold(engine)
    else:
        path = str(tmp_path / "bibliobus.db")
        url = f"sqlite:///{path}"
        upgrade("bibliobus", url)
        engine = make_engine(url)
        hold = SqliteHold(path, monkeypatch)
    configs = [service_config(rabbit_config, url, **RULE, DEMAND_EVALUATION_SECONDS=3600) for _ in range(2)]
    declare_topology([BibliobusService], configs[0])
    tap = EventTap(rabbit_config["AMQP_URI"], {"bibliobus.events": list(SWITCHES)})
    replicas = [container_factory(BibliobusService, config) for config in configs]
    for replica in replicas:
        replica.start()
    bases = [f"http://{config['WEB_SERVER_ADDRESS']}" for config in configs]
    bus = Bus(replicas, [Client(b, token("staff")) for b in bases], [Client(b, token("analyst", "analyst-1"))
                                                                     for b in bases],
              tap, engine, hold, exact=request.param == "postgresql")
    assert bus.analyst[0].post("/stops", json=stop_body("lux")).status_code == 201
    yield bus
    tap.close()
    engine.dispose()


def assert_one_switch_per_change(bus: Bus, switches: list[tuple[str, int, str]], before: int,
                                 was_enabled: bool) -> None:
    """Whatever the order: each switch changes the state, revisions follow one another, the audit has one
    entry per switch, and the stop's row agrees."""
    kinds = [kind for kind, _, _ in switches]
    expected_kinds = [SWITCHES[(i + was_enabled) % 2] for i in range(len(switches))]
    assert kinds == expected_kinds, f"switches that do not change the state: {switches}"
    assert [revision for _, revision, _ in switches] == list(range(before + 1, before + 1 + len(switches))), (
        f"revisions must grow by one per switch: {switches}")
    stop = bus.stop()
    assert stop["revision"] == before + len(switches), (stop["revision"], switches)
    assert stop["enabled"] == (was_enabled if not switches else switches[-1][0] == "stop_enabled"), (stop, switches)


def test_eight_staff_register_interest_at_once_the_stop_opens_once(bus):
    """Eight phone calls at a closed stop, threshold 3, spread over two replicas."""
    bus.at_once([bus.interest(n, f"C{n + 1}") for n in range(8)])
    switches = bus.switches()
    assert switches == [("stop_enabled", 2, "threshold")], f"one opening, revision 2; got {switches}"
    assert bus.audited() == [("enabled", "threshold")], bus.audited()
    stop = bus.stop()
    assert (stop["enabled"], stop["revision"], stop["demand"]) == (True, 2, 8)


def two_patrons(bus: Bus) -> None:
    """Closed, demand 2: one more patron opens it."""
    for n, card in enumerate(("A1", "A2")):
        bus.interest(n, card)()


def open_one_round_below(bus: Bus) -> None:
    """Open (forced on, then given back to the rule), no demand, one round below: the next round closes it."""
    bus.override(0, "on")()
    bus.override(1, "auto")()
    bus.round(0)()
    stop = bus.stop()
    assert (stop["enabled"], stop["mode"], stop["rounds_below"], stop["revision"]) == (True, "auto", 1, 2)


# (setup, the actions in the order they queue for the lock, the switches expected on PostgreSQL)
SCENARIOS = {
    "override on, then a signal": (two_patrons, [("override", "on"), ("interest", "A3")],
                                   [("stop_enabled", 2, "manual")]),
    "a signal, then override on": (two_patrons, [("interest", "A3"), ("override", "on")],
                                   [("stop_enabled", 2, "threshold")]),
    "override off, then signals": (two_patrons, [("override", "off"), ("interest", "A3"), ("interest", "A4")], []),
    "signals, then override off": (two_patrons, [("interest", "A3"), ("interest", "A4"), ("override", "off")],
                                   [("stop_enabled", 2, "threshold"), ("stop_disabled", 3, "manual")]),
    "thresholds lowered, then a signal": (two_patrons, [("thresholds", 2), ("interest", "A3")],
                                          [("stop_enabled", 2, "threshold")]),
    "a closing round, then signals": (open_one_round_below,
                                      [("round",), ("interest", "B1"), ("interest", "B2"), ("interest", "B3")],
                                      [("stop_disabled", 3, "threshold"), ("stop_enabled", 4, "threshold")]),
    "signals, then a round": (open_one_round_below,
                              [("interest", "B1"), ("interest", "B2"), ("interest", "B3"), ("round",)], []),
    "a closing round, then override on": (open_one_round_below, [("round",), ("override", "on")],
                                          [("stop_disabled", 3, "threshold"), ("stop_enabled", 4, "manual")]),
    "override on, then a round": (open_one_round_below, [("override", "on"), ("round",)], []),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_overrides_signals_and_rounds_at_the_same_moment(bus, scenario):
    setup, actions, expected = SCENARIOS[scenario]
    setup(bus)
    before = bus.stop()
    bus.switches()  # the setup's, set aside
    audited_before = len(bus.audited())
    bus.at_once([getattr(bus, name)(n, *args) for n, (name, *args) in enumerate(actions)])
    switches = bus.switches()
    if bus.exact:
        assert switches == expected, f"{scenario}: expected {expected}, got {switches}"
    assert_one_switch_per_change(bus, switches, before["revision"], before["enabled"])
    assert bus.audited()[audited_before:] == [(kind.removeprefix("stop_"), reason) for kind, _, reason in switches]
    mode = next((args[0] for name, *args in reversed(actions) if name == "override"), "auto")
    stop = bus.stop()
    assert stop["mode"] == mode
    if mode != "auto":
        assert stop["enabled"] == (mode == "on"), f"forced {mode}, yet {stop}"
