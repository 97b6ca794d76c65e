"""The bibliobus service over HTTP, with reservations and inventory on the same broker: stops offered as
pickup points, demand, the rule, overrides and their audit, thresholds; bad input and access refused."""

from datetime import UTC, datetime, timedelta

import pytest
from openapi_spec_validator import validate
from sqlalchemy import create_engine, select

from services.bibliobus.models import Decision, DemandSignal, Stop
from tests.helpers import Client, daily_visits, stop_body, wait_for
from tests.integration.helpers import RULE, add_stop, bus_rows


@pytest.fixture
def bus(drive_factory):
    return drive_factory(bibliobus_extra=dict(RULE))


def test_a_stop_is_a_pickup_point_that_opens_when_enough_patrons_ask(bus, token):
    stop = add_stop(bus, "lux")
    assert (stop["enabled"], stop["mode"], stop["demand"], stop["enable_threshold"]) == (False, "auto", 0, 3)
    point = next(p for p in bus.reservations.get("/pickup-points").json() if p["id"] == "lux")
    assert (point["kind"], point["enabled"], point["district"]) == ("bibliobus_stop", False, "Saint-Rémy")
    registered = bus.tap.wait("stop_registered", stop_id="lux")[0]["data"]
    assert registered["site"] == "central" and registered["visits"] == daily_visits()

    for n, card in enumerate(["C1", "C2", "C2"]):  # C2 twice: distinct patrons count
        asked = bus.bibliobus.post("/stops/lux/interest", headers=token("patron", card), json={"patron": card})
        assert asked.status_code == 201, asked.text
        assert asked.json()["demand"] == min(n + 1, 2) and not asked.json()["enabled"]
    phoned = bus.bibliobus.post("/stops/lux/interest", headers=token("staff"), json={"patron": "C3"})
    assert phoned.json()["enabled"] and phoned.json()["demand"] == 3
    enabled = bus.tap.wait("stop_enabled", stop_id="lux")[0]["data"]
    assert (enabled["reason"], enabled["demand"], enabled["enable_threshold"], enabled["disable_threshold"],
            enabled["decided_by"]) == ("threshold", 3, 3, 1, "rule")
    wait_for(lambda: next(p for p in bus.reservations.get("/pickup-points").json() if p["id"] == "lux")["enabled"],
             what="reservations to learn the stop opened")
    history = bus.bibliobus.get("/stops/lux/history").json()
    assert [(h["action"], h["reason"], h["decided_by"], h["demand"]) for h in history] == [
        ("enabled", "threshold", "rule", 3)]
    assert bus_rows(bus, DemandSignal, DemandSignal.stop_id == "lux") == 4


def test_an_analyst_forces_a_stop_and_gives_it_back_to_the_rule_which_closes_it_after_its_rounds(
        drive_factory, token):
    bus = drive_factory(bibliobus_extra={**RULE, "DEMAND_EVALUATION_SECONDS": 0.2})
    add_stop(bus, "crissey")
    forced = bus.bibliobus.post("/stops/crissey/override", json={"mode": "on", "reason": "fête du village"})
    assert forced.status_code == 200 and forced.json()["enabled"] and forced.json()["mode"] == "on"
    enabled = bus.tap.wait("stop_enabled", stop_id="crissey")[0]["data"]
    assert (enabled["reason"], enabled["decided_by"], enabled["note"]) == ("manual", "analyst-1", "fête du village")
    bus.tap.drain()
    assert bus.tap.of_type("stop_disabled") == []  # forced on: the rounds (demand 0) do not close it

    back = bus.bibliobus.post("/stops/crissey/override", json={"mode": "auto", "reason": "fête finie"})
    assert back.json()["mode"] == "auto"
    disabled = bus.tap.wait("stop_disabled", stop_id="crissey", timeout=10)[0]["data"]
    assert (disabled["reason"], disabled["decided_by"], disabled["demand"]) == ("threshold", "rule", 0)
    actions = [(h["action"], h["decided_by"], h["note"]) for h in bus.bibliobus.get("/stops/crissey/history").json()]
    assert actions == [("disabled", "rule", None), ("override_auto", "analyst-1", "fête finie"),
                       ("enabled", "analyst-1", "fête du village"), ("override_on", "analyst-1", "fête du village")]


def test_thresholds_apply_at_once_and_a_stop_may_have_its_own(bus, token):
    add_stop(bus, "stade")
    add_stop(bus, "lux")
    for card in ("C1", "C2"):
        bus.bibliobus.post("/stops/stade/interest", headers=token("staff"), json={"patron": card})
    assert not bus.bibliobus.get("/stops/stade").json()["enabled"]
    lowered = bus.bibliobus.call("PUT", "/thresholds", json={"enable_threshold": 2, "disable_threshold": 1,
                                                      "window_days": 7, "reason": "rentrée: tester la demande"})
    assert lowered.status_code == 200, lowered.text
    assert (lowered.json()["enable_threshold"], lowered.json()["window_days"], lowered.json()["updated_by"]) == (
        2, 7, "analyst-1")
    assert bus.bibliobus.get("/stops/stade").json()["enabled"]
    assert bus.tap.wait("stop_enabled", stop_id="stade")[0]["data"]["enable_threshold"] == 2

    own = bus.bibliobus.call("PUT", "/stops/lux/thresholds", json={
        "enable_threshold": 8, "disable_threshold": None, "reason": "arrêt très fréquenté"})
    assert own.status_code == 200, own.text
    assert (own.json()["enable_threshold"], own.json()["disable_threshold"], own.json()["own_thresholds"]) == (
        8, 1, True)
    assert bus.bibliobus.get("/stops/stade").json()["enable_threshold"] == 2


def test_the_network_thresholds_audit_says_who_when_what_from_and_to_and_why(bus, token):
    first = bus.bibliobus.call("PUT", "/thresholds", json={"enable_threshold": 4, "disable_threshold": 2,
                                                           "reason": "été: moins de passage"})
    assert first.status_code == 200, first.text
    second = bus.bibliobus.call("PUT", "/thresholds", headers=token("analyst", "analyst-2"), json={
        "enable_threshold": 6, "disable_threshold": 2, "consecutive_evaluations": 5, "window_days": 21,
        "reason": "rentrée: demande plus forte"})
    assert second.status_code == 200, second.text
    refused = bus.bibliobus.call("PUT", "/thresholds", json={"enable_threshold": 1, "disable_threshold": 3,
                                                             "reason": "essai"})
    assert refused.status_code == 400  # refused: not audited

    answer = bus.bibliobus.get("/thresholds/history", headers=token("staff"))
    assert answer.status_code == 200, answer.text
    changes = answer.json()
    configured = {"enable_threshold": 3, "disable_threshold": 1, "consecutive_evaluations": 2, "window_days": 14}
    after_first = {**configured, "enable_threshold": 4, "disable_threshold": 2}
    assert [(c["changed_by"], c["reason"], c["before"], c["after"]) for c in changes] == [
        ("analyst-2", "rentrée: demande plus forte", after_first,
         {"enable_threshold": 6, "disable_threshold": 2, "consecutive_evaluations": 5, "window_days": 21}),
        ("analyst-1", "été: moins de passage", configured, after_first)]
    assert changes[0]["at"] == second.json()["updated_at"]
    assert [c["id"] for c in bus.bibliobus.get("/thresholds/history", params={"limit": 1}).json()] == [changes[0]["id"]]
    assert bus.bibliobus.get("/thresholds/history", headers=token("patron", "C1")).status_code == 403
    document = Client(bus.bibliobus.base).get("/openapi.json").json()
    answer_schema = document["paths"]["/thresholds/history"]["get"]["responses"]["200"]
    assert "ThresholdChange" in str(answer_schema)


def test_bad_input_answers_4xx_naming_the_field_and_changes_nothing(bus, token):
    add_stop(bus, "lux")
    before = bus.bibliobus.get("/thresholds").json()
    refused = [  # (method, path, body, status, field named)
        ("GET", "/stops/nowhere", None, 404, None),
        ("POST", "/stops/nowhere/override", {"mode": "on", "reason": "parce que"}, 404, None),
        ("POST", "/stops/nowhere/interest", {"patron": "C1"}, 404, None),
        ("POST", "/stops/lux/override", {"mode": "on"}, 400, "reason"),
        ("POST", "/stops/lux/override", {"mode": "sometimes", "reason": "parce que"}, 400, "mode"),
        ("PUT", "/thresholds", {"enable_threshold": -1, "disable_threshold": 0, "reason": "essai"}, 400,
         "enable_threshold"),
        ("PUT", "/thresholds", {"enable_threshold": 2, "disable_threshold": 4, "reason": "essai"}, 400,
         "disable_threshold"),
        ("PUT", "/thresholds", {"enable_threshold": 5, "disable_threshold": 2}, 400, "reason"),
        ("PUT", "/stops/lux/thresholds", {"enable_threshold": 1, "disable_threshold": None, "reason": "essai"}, 400,
         "disable_threshold"),
        ("POST", "/stops", stop_body("lux"), 409, None),
        ("POST", "/stops", stop_body("new", visits=[{"weekday": "monday", "arrives": "10:00", "departs": "09:00"}]),
         400, "visits"),
        ("POST", "/stops", stop_body("Bad Id"), 400, "id"),
        ("POST", "/what-if", {"first": "2026-01-10", "last": "2026-01-01", "enable_threshold": 3,
                              "disable_threshold": 1}, 400, "last"),
    ]
    for method, path, body, status, field in refused:
        staff_only = token("staff") if path.endswith("/interest") else None  # a phone call: staff
        answer = bus.bibliobus.call(method, path, json=body, headers=staff_only)
        assert answer.status_code == status, (method, path, answer.text)
        payload = answer.json()
        if field is not None:
            assert field in (payload.get("fields") or {}) or payload.get("details", {}).get("field") == field, (
                path, payload)
    assert bus.bibliobus.get("/thresholds").json() == before
    assert bus.bibliobus.get("/stops/lux").json()["mode"] == "auto"
    assert bus_rows(bus, Decision) == 0 and bus_rows(bus, Stop) == 1 and bus_rows(bus, DemandSignal) == 0
    at_nowhere = bus.reservations.post("/reservations", json={"patron": "C1", "pickup_point": "nowhere",
                                                              "titles": ["t"]})
    assert at_nowhere.status_code == 400 and at_nowhere.json()["details"]["field"] == "pickup_point"


ROUTES = [("GET", "/stops"), ("POST", "/stops"), ("GET", "/stops/lux"), ("PUT", "/stops/lux"),
          ("GET", "/stops/lux/demand"), ("GET", "/stops/lux/demand.png"), ("GET", "/map.png"),
          ("POST", "/stops/lux/interest"), ("POST", "/stops/lux/override"), ("GET", "/stops/lux/history"),
          ("GET", "/stops/lux/manifest"), ("GET", "/thresholds"), ("PUT", "/thresholds"),
          ("GET", "/thresholds/history"), ("PUT", "/stops/lux/thresholds"), ("POST", "/what-if")]


def test_every_route_wants_a_token_and_the_right_role(bus, token):
    add_stop(bus, "lux")
    anonymous = Client(bus.bibliobus.base)
    for method, path in ROUTES:
        assert anonymous.call(method, path).status_code == 401, (method, path)
    patron, staff, ops = token("patron", "C7"), token("staff"), token("ops", "ops-1")
    for method, path in ROUTES:
        if (method, path) not in {("GET", "/stops"), ("GET", "/stops/lux"), ("POST", "/stops/lux/interest")}:
            assert bus.bibliobus.call(method, path, headers=patron, json={}).status_code == 403, (method, path)
    for method, path in [("POST", "/stops/lux/override"), ("PUT", "/thresholds"), ("PUT", "/stops/lux/thresholds")]:
        assert bus.bibliobus.call(method, path, headers=staff, json={}).status_code == 403, (method, path)
    assert bus.bibliobus.get("/stops", headers=patron).status_code == 200
    assert bus.bibliobus.get("/stops/lux", headers=ops).status_code == 200
    other_card = bus.bibliobus.post("/stops/lux/interest", headers=patron, json={"patron": "C8"})
    assert other_card.status_code == 403 and bus_rows(bus, DemandSignal) == 0
    own_card = bus.bibliobus.post("/stops/lux/interest", headers=patron, json={"patron": "C7"})
    assert own_card.status_code == 201
    health = Client(bus.bibliobus.base).get("/health")
    assert health.status_code == 200 and health.json()["checks"]["outbox_stuck"] == 0
    document = Client(bus.bibliobus.base).get("/openapi.json").json()
    validate(document)
    assert {"/stops/{stop_id}/override", "/what-if", "/stops/{stop_id}/manifest"} <= set(document["paths"])


def test_the_timer_round_is_claimed_by_one_replica_only(bus):
    """Two replicas, one round: the second conditional update finds the round taken."""
    from sqlalchemy.orm import Session

    from services.bibliobus.control import claim_round

    engine = create_engine(bus.urls["bibliobus"])
    now = datetime.now(UTC)
    with Session(engine) as first, Session(engine) as second:
        with first.begin():
            assert claim_round(first, now, every_seconds=60)
        with second.begin():
            assert not claim_round(second, now + timedelta(seconds=1), every_seconds=60)
        with second.begin():
            assert claim_round(second, now + timedelta(seconds=31), every_seconds=60)
    engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_network_threshold_changes_recorded_before_their_audit_move_into_it(backend, make_database, tmp_path):
    """0002: the network's changes, so far decisions without a stop that no route read, become its audit;
    each one's old values are the previous one's new values. And back on downgrade."""
    from alembic import command
    from sqlalchemy import insert, text

    from services.common.migrate import alembic_config, upgrade

    if backend == "postgresql":
        url = make_database("bibliobus")
        command.downgrade(alembic_config("bibliobus", url), "0001")
    else:
        url = f"sqlite:///{tmp_path / 'bibliobus.db'}"
        upgrade("bibliobus", url, "0001")
    engine = create_engine(url)
    at = datetime(2026, 9, 1, 8, tzinfo=UTC)
    network = {"stop_id": None, "action": "thresholds", "reason": "manual"}
    with engine.begin() as conn:
        conn.execute(insert(Decision.__table__), [
            {**network, "at": at, "decided_by": "analyst-1", "note": "été", "enable_threshold": 4,
             "disable_threshold": 2, "detail": {"consecutive_evaluations": 3, "window_days": 14}},
            {"stop_id": "lux", "at": at, "decided_by": "rule", "action": "enabled", "reason": "threshold",
             "note": None, "enable_threshold": 4, "disable_threshold": 2, "detail": None},
            {**network, "at": at + timedelta(days=30), "decided_by": "analyst-2", "note": "rentrée",
             "enable_threshold": 6, "disable_threshold": 2, "detail": {"consecutive_evaluations": 5,
                                                                       "window_days": 21}}])
    upgrade("bibliobus", url)
    with engine.connect() as conn:
        changes = conn.execute(text(
            "SELECT changed_by, reason, old_enable_threshold, old_window_days, new_enable_threshold, "
            "new_consecutive_evaluations, new_window_days FROM threshold_changes ORDER BY at")).all()
        left = conn.execute(select(Decision.stop_id, Decision.action)).all()
    assert [tuple(c) for c in changes] == [("analyst-1", "été", None, None, 4, 3, 14),
                                           ("analyst-2", "rentrée", 4, 14, 6, 5, 21)]
    assert [tuple(d) for d in left] == [("lux", "enabled")]

    command.downgrade(alembic_config("bibliobus", url), "0001")
    with engine.connect() as conn:
        back = conn.execute(select(Decision.decided_by, Decision.note, Decision.enable_threshold, Decision.detail)
                            .where(Decision.stop_id.is_(None)).order_by(Decision.at)).all()
    engine.dispose()
    assert [tuple(d) for d in back] == [("analyst-1", "été", 4, {"consecutive_evaluations": 3, "window_days": 14}),
                                        ("analyst-2", "rentrée", 6, {"consecutive_evaluations": 5, "window_days": 21})]
