"""A SQLAlchemy session per nameko worker, on PostgreSQL (psycopg2, green under eventlet) or a SQLite file."""

import functools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from services.common.settings import setting


def make_engine(url: str, pool_size: int = 12) -> Engine:
    """One engine per process. The pool holds at least as many connections as nameko runs workers,
    so a handler never waits on the pool (and never times out into a lost message). Statements' parameters are
    kept out of exceptions, hence out of tracebacks and logs: they may hold patrons' contact details."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, hide_parameters=True, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, issue BEGIN (SQLAlchemy's documented pysqlite recipe).
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # No busy wait inside SQLite: it blocks the whole process (see `_begin_immediate`).
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            _begin_immediate(conn.connection.driver_connection)

        return engine
    engine = create_engine(
        url,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=RECYCLE_SECONDS,
        pool_timeout=30,
        connect_args={"connect_timeout": 5, "options": "-c statement_timeout=30000"},
    )
    event.listen(engine.pool, "checkin", _note_checkin)
    event.listen(engine.pool, "checkout", _ping_if_idle)
    return engine


# No ping on every checkout (`pool_pre_ping` cost a round trip per worker, a tenth of a placement's): a connection
# back in use within IDLE_PING_SECONDS was working a moment ago. One idle longer (a quiet night, a restart of
# PostgreSQL meanwhile) is pinged first, and a dead one replaced before the worker sees it; none is kept longer
# than RECYCLE_SECONDS. When PostgreSQL goes away, the first failure invalidates the whole pool (SQLAlchemy's
# disconnect handling), so the next checkouts connect afresh.
IDLE_PING_SECONDS = 5.0
RECYCLE_SECONDS = 1800


def _note_checkin(_dbapi_conn: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    if time.monotonic() - record.info.get("checked_in_at", float("inf")) < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_conn.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        dbapi_conn.rollback()  # psycopg2 opened a transaction for the ping: the worker's begins afresh
    except Exception as exc:
        # The pool drops this connection and checks out another (SQLAlchemy's documented checkout-ping recipe).
        raise DisconnectionError(f"pooled connection unusable: {exc.__class__.__name__}") from exc


def _begin_immediate(dbapi_conn: sqlite3.Connection, wait_seconds: float = 30.0) -> None:
    """Take the write lock at BEGIN (a deferred transaction that upgrades later can deadlock), waiting
    for it with `time.sleep`, which eventlet makes cooperative. SQLite's own busy wait would block the hub,
    so the green thread holding the lock (the relay, awaiting a publisher confirm) could never finish."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            dbapi_conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "postgresql"


def insert_new(session: Session, model: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect (rows whose key exists are left alone), to run
    with a list of rows and RETURNING: one statement compiled once, sent as multi-row VALUES."""
    return _insert_new(session.get_bind().dialect.name, model)


@functools.cache
def _insert_new(dialect: str, model: Any) -> Any:
    # Built once per table: a statement is immutable, and building it again cost as much as the cached compile.
    if dialect == "postgresql":
        return pg_insert(model).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite_insert(model).on_conflict_do_nothing()
    return insert(model)  # pragma: no cover - other backends are not configured



class Database(DependencyProvider):
    """Gives each worker its own session, closed when the worker ends.

    Workers commit inside the method (`with session.begin():`): nameko acks a message before
    `worker_result` runs, so a commit in a hook could lose the effect of an acked message.
    """

    def __init__(self, base: type[DeclarativeBase], url_key: str = "DB_URL") -> None:
        self.base = base
        self.url_key = url_key
        self.sessions: dict[Any, Session] = {}

    def setup(self) -> None:
        url = setting(self.container.config, self.url_key)
        if not url:
            raise RuntimeError(f"{self.url_key} is not configured")
        workers = int(self.container.config.get("max_workers", 10))
        self.engine = make_engine(url, pool_size=workers + 4)
        self.make_session = sessionmaker(bind=self.engine, expire_on_commit=False)

    def stop(self) -> None:
        self.engine.dispose()

    def kill(self) -> None:
        self.engine.dispose()

    def get_dependency(self, worker_ctx: Any) -> Session:
        session = self.make_session()
        session.info["consumer"] = f"{self.container.service_name}.{worker_ctx.entrypoint.method_name}"
        self.sessions[worker_ctx] = session
        return session

    def worker_teardown(self, worker_ctx: Any) -> None:
        session = self.sessions.pop(worker_ctx, None)
        if session is not None:
            session.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session outside any worker (relay, health)."""
        session = self.make_session()
        try:
            yield session
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
