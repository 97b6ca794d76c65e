"""What-ifs, demand over time and the stop map, as JSON and PNG, and the `drive bibliobus` commands that show
them in a terminal."""

import os
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from services.bibliobus import views
from services.bibliobus.domain import Signal, count_demand
from services.bibliobus.models import DemandSignal
from services.bibliobus.whatif import day_ends, days_between
from services.cli import app
from services.common.database import make_engine
from services.common.migrate import upgrade
from tests.integration.helpers import RULE, add_stop

PNG = b"\x89PNG\r\n\x1a\n"
TODAY = date.today()
ASKED = datetime.combine(TODAY - timedelta(days=20), time(12), UTC)


@pytest.fixture
def recorded(drive_factory):
    """Two stops; four patrons asked for `lux` 20 days ago, one for `stade`."""
    bus = drive_factory(bibliobus_extra=dict(RULE))
    add_stop(bus, "lux")
    add_stop(bus, "stade")
    engine = make_engine(bus.urls["bibliobus"], pool_size=1)
    with Session(engine) as session, session.begin():
        session.add_all([DemandSignal(stop_id="lux", patron=f"C{n}", kind="interest", at=ASKED) for n in range(4)])
        session.add(DemandSignal(stop_id="stade", patron="C9", kind="reservation", at=ASKED))
    engine.dispose()
    return bus


def test_a_what_if_replays_the_recorded_demand_day_by_day(recorded):
    body = {"first": str(TODAY - timedelta(days=30)), "last": str(TODAY - timedelta(days=1)),
            "enable_threshold": 3, "disable_threshold": 1, "consecutive_evaluations": 2}
    answer = recorded.bibliobus.post("/what-if", json=body)
    assert answer.status_code == 200, answer.text
    result = {s["stop_id"]: s for s in answer.json()["stops"]}
    assert len(answer.json()["days"]) == 30 and answer.json()["window_days"] == 14
    lux = result["lux"]
    first_open = lux["open"].index(True)
    assert answer.json()["days"][first_open] == str(ASKED.date())
    assert lux["open_days"] == 15  # 14 days with the four asks in the window, one more below before closing
    assert max(lux["demand"]) == 4 and result["stade"]["open_days"] == 0
    lenient = recorded.bibliobus.post("/what-if", json={**body, "enable_threshold": 1, "disable_threshold": 0})
    assert {s["stop_id"]: s["open_days"] > 0 for s in lenient.json()["stops"]} == {"lux": True, "stade": True}

    chart = recorded.bibliobus.post("/what-if", params={"format": "png"}, json=body)
    assert chart.headers["Content-Type"] == "image/png" and chart.content.startswith(PNG)


def test_demand_over_time_and_the_map_as_charts(recorded):
    report = recorded.bibliobus.get("/stops/lux/demand", params={"days": 30}).json()
    assert len(report["series"]) == 30 and report["demand"] == 0 and report["interests_in_window"] == 0
    assert max(p["demand"] for p in report["series"]) == 4
    for path in ("/stops/lux/demand.png", "/map.png"):
        answer = recorded.bibliobus.get(path)
        assert answer.status_code == 200 and answer.content.startswith(PNG), path
    assert recorded.bibliobus.get("/stops/nowhere/demand.png").status_code == 404


def test_the_drive_bibliobus_commands(recorded, tmp_path, monkeypatch):
    monkeypatch.setenv("BIBLIOBUS_URL", recorded.bibliobus.base)
    monkeypatch.delenv("DRIVE_TOKEN", raising=False)
    runner = CliRunner()

    def drive(*args: str) -> str:
        result = runner.invoke(app, ["bibliobus", *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    assert "Arrêt lux" in drive("stops") and "closed" in drive("stops")
    chart = tmp_path / "what-if.png"
    out = drive("what-if", "--from", str(TODAY - timedelta(days=30)), "--to", str(TODAY - timedelta(days=1)),
                "--enable", "3", "--disable", "1", "--png", str(chart))
    assert "■" * 15 in out and chart.read_bytes().startswith(PNG)
    assert "forced off" in drive("disable", "lux", "--reason", "véhicule en révision")
    assert "véhicule en révision" in drive("history", "lux")
    assert "analyst-cli" in drive("thresholds", "--enable", "4", "--disable", "1", "--reason", "essai")
    changes = drive("thresholds", "--history")
    assert "analyst-cli" in changes and "essai" in changes and "3 / 1 / 2 / 14" in changes, changes
    refused = runner.invoke(app, ["bibliobus", "enable", "nowhere", "--reason", "essai"])
    assert refused.exit_code == 2 and "404" in refused.output  # refused
    keep = os.environ.get("BIBLIOBUS_CHARTS_DIR")  # BIBLIOBUS_CHARTS_DIR=/tmp/charts keeps them to look at
    if keep:
        (Path(keep) / chart.name).write_bytes(chart.read_bytes())
        for name, path in (("map", "/map.png"), ("demand", "/stops/lux/demand.png")):
            (Path(keep) / f"{name}.png").write_bytes(recorded.bibliobus.get(path).content)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_the_what_ifs_demand_series_is_the_rules_count_at_each_day_end(backend, make_database, tmp_path):
    """PostgreSQL computes the series in one query, SQLite through the signals: both must be `count_demand` at
    each day's end, boundaries included (a signal exactly at an end, exactly a window before one, a microsecond
    after that, across the change to summer time, one patron asking again and again)."""
    if backend == "postgresql":
        url = make_database("bibliobus")
    else:
        url = f"sqlite:///{tmp_path / 'bibliobus.db'}"
        upgrade("bibliobus", url)
    rng = random.Random(3)
    ends = day_ends(days_between(date(2026, 3, 10), date(2026, 4, 10)), "Europe/Paris")
    window = timedelta(days=7)
    edges = [end - window for end in ends[::3]] + [end - window + timedelta(microseconds=1) for end in ends[1::3]]
    times = [ends[0] - timedelta(days=9) + timedelta(seconds=rng.uniform(0, 42 * 86400)) for _ in range(1500)]
    signals = [Signal(rng.choice(["lux", "stade", "gare"]), f"C{rng.randrange(40)}", at) for at in times]
    signals += [Signal("gare", f"E{n}", at) for n, at in enumerate(edges + ends[::4])]  # alone in their window
    signals += [Signal("lux", "C-again", ends[5] - timedelta(hours=k * 17)) for k in range(30)]
    engine = make_engine(url, pool_size=1)
    with Session(engine) as session, session.begin():
        session.add_all([DemandSignal(stop_id=s.stop_id, patron=s.patron, kind="reservation", at=s.at)
                         for s in signals])
    with Session(engine) as session, session.begin():
        series = views.demand_by_day_per_stop(session, ["gare", "lux", "stade", "empty"], ends, 7)
    engine.dispose()
    expected = {stop: [count_demand([s for s in signals if s.stop_id == stop], end, 7) for end in ends]
                for stop in ("gare", "lux", "stade", "empty")}
    assert series == expected
