"""The reliability kit's cheaper paths (issue 14) keep their guarantees: outbox rows written at commit, in one
statement, leave with a savepoint rolled back and with the transaction; a pooled connection that died while idle
(PostgreSQL restarted, the connection killed) is replaced before a worker uses it, without a ping per checkout."""

import pytest
from sqlalchemy import create_engine, select, text

from services.common import database
from services.common.reliability import record_event
from tests.integration.plumbing.kit import Effect, Outbox, thing

pytestmark = pytest.mark.time_limit(30)


def _sent(store) -> list[str]:
    with store.session() as session:
        return [m["data"]["label"] for m in session.scalars(select(Outbox.message).order_by(Outbox.seq))]


def test_outbox_rows_follow_their_savepoints(store):
    with store.session() as session, session.begin():
        record_event(session, Outbox, thing("before"))
        with session.begin_nested():
            record_event(session, Outbox, thing("kept savepoint"))
        try:
            with session.begin_nested():
                record_event(session, Outbox, thing("rolled back savepoint"))
                with session.begin_nested():
                    record_event(session, Outbox, thing("inside the rolled back one"))
                raise RuntimeError("the step failed")
        except RuntimeError:
            pass
        record_event(session, Outbox, thing("after"))
    assert _sent(store) == ["before", "kept savepoint", "after"]


def test_outbox_rows_leave_with_their_transaction(store):
    with store.session() as session:
        with pytest.raises(RuntimeError), session.begin():
            session.add(Effect(event_id="e-1", label="never"))
            record_event(session, Outbox, thing("never"))
            raise RuntimeError("the handler failed")
        with session.begin():  # the same session's next transaction starts with nothing pending
            record_event(session, Outbox, thing("next"))
    assert _sent(store) == ["next"]
    assert store.count(Effect) == 0


def test_a_batch_of_events_is_one_insert(store):
    statements = []
    with store.session() as session:
        from sqlalchemy import event

        event.listen(store.engine, "before_cursor_execute",
                     lambda _c, _cur, statement, _p, _ctx, _many: statements.append(statement))
        with session.begin():
            for n in range(50):
                record_event(session, Outbox, thing(f"row {n}"))
    assert sum("INSERT INTO outbox" in s for s in statements) == 1
    assert _sent(store) == [f"row {n}" for n in range(50)]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_connection_killed_while_idle_is_replaced_before_use(store, db_url, monkeypatch):
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)
    with store.engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    with store.session() as session, session.begin():  # the dead one is pinged, dropped, another connected
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
