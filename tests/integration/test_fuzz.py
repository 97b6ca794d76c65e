"""A schema-driven fuzz of the four APIs (schemathesis): every operation each service documents in its own
`/openapi.json`, with a staff (or analyst) token and a patron's. Each operation gets schemathesis's coverage cases
(deterministic: boundaries of every field, wrong types, missing and unexpected fields, both with made-up path ids
and with real ones, so the rules behind them run), then a bounded number of random examples with real ids
(derandomized). Every answer must be below 500 and match its document: a documented status code, JSON, a body
of the documented shape; and data the document says is invalid must be refused (4xx)."""

import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from nameko.testing.utils import find_free_port
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from services.common.messaging import declare_topology
from services.notifications.service import NotificationsService
from tests.helpers import Client
from tests.integration.helpers import catalogue, service_config

# Examples per operation, token and kind of path ids: 64 operations stay within a couple of minutes on 2 cores.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CARD = "12345"
PATH = ParameterLocation.PATH
PRIVILEGED = ("staff", "analyst", "ops")


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: dict = field(default_factory=dict)  # (operation, role, first line of the failure) → an example


@pytest.fixture
def four_services(drive_factory, make_database, rabbit_config, container_factory, token, tmp_path):
    drive = drive_factory(bibliobus_extra={})
    cfg = service_config(rabbit_config, make_database("notifications"), NOTIFY_FILE_SINK_DIR=str(tmp_path),
                         WEB_SERVER_ADDRESS=f"127.0.0.1:{find_free_port()}")
    declare_topology([NotificationsService], cfg)
    container_factory(NotificationsService, cfg).start()
    notifications = Client(f"http://{cfg['WEB_SERVER_ADDRESS']}", token("staff"))
    return drive, notifications


def known_ids(drive, notifications, token) -> dict[str, str]:
    """Real records for the path ids, so that generated bodies reach the rules, not only 404."""
    title_id = catalogue(drive, "La neige rouge", [("FZ-1", "neighbourhood", "R HOL 2")])
    placed = drive.reservations.post("/reservations", headers=token("patron", CARD),
                                     json={"patron": CARD, "pickup_point": "neighbourhood", "titles": [title_id]})
    assert placed.status_code == 201, placed.text
    asked = drive.reservations.post("/selections", headers=token("patron", CARD), json={
        "patron": CARD, "pickup_point": "neighbourhood", "tastes": "polars scandinaves", "audience": "adult",
        "documents": 2})
    assert asked.status_code == 201, asked.text
    stop = drive.bibliobus.post("/stops", json={
        "id": "fuzz-stop", "name": "Place de la mairie", "district": "Nord", "latitude": 46.8, "longitude": 4.85,
        "capacity_per_visit": 10, "visits": [{"weekday": "tuesday", "arrives": "09:00", "departs": "11:00"}]})
    assert stop.status_code == 201, stop.text
    contact = notifications.call("PUT", f"/patrons/{CARD}/contact", json={"email": "fuzz@example.org"})
    assert contact.status_code == 200, contact.text
    return {"card": CARD, "point_id": "neighbourhood", "reservation_id": placed.json()["id"],
            "selection_id": asked.json()["id"], "title_id": title_id, "barcode": "FZ-1", "stop_id": "fuzz-stop"}


def roles_of(operation) -> tuple[str, ...]:
    found = re.match(r"Roles: (.*)\.", operation.definition.raw.get("description", ""))
    return tuple(r.strip() for r in found.group(1).split(",")) if found else ()


def scenario_of(case) -> str:
    data = case.meta.phase.data if case.meta is not None else None
    return str(getattr(data, "scenario", "") or "")


def send(case, base_url: str, headers: dict, tally: Tally, role: str) -> None:
    scenario = scenario_of(case)
    tally.requests += 1
    response = case.call(base_url=base_url, headers=headers, timeout=20)
    tally.statuses[response.status_code] += 1
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    checks = CHECKS + ([negative_data_rejection] if negative else [])
    try:
        case.validate_response(response, checks=checks)
    except (Failure, FailureGroup) as found:  # keep one example of each kind of failure, then go on
        for failure in getattr(found, "exceptions", (found,)):
            key = (case.operation.label, role, f"{failure.code} {failure.title}: {failure.message[:160]}")
            tally.failures.setdefault(key, f"{response.status_code} {scenario} {case.as_curl_command()}\n"
                                           f"{response.text[:600]}")


def with_ids(case, known: dict):
    """The case with the path ids it does not mutate on purpose replaced by real ones."""
    data = case.meta.phase.data if case.meta is not None else None
    mutated = getattr(data, "parameter", None) if getattr(data, "parameter_location", None) == PATH else None
    for name in case.path_parameters or {}:
        if name in known and name != mutated:
            case.path_parameters[name] = known[name]
    return case


def coverage(schema, operation, base_url: str, headers: dict, known: dict, tally: Tally, role: str) -> None:
    config = schema.config.generation_for(operation=operation, phase="coverage")
    real = {p.name for p in operation.path_parameters} & known.keys()
    for case in schema.iter_coverage_cases(operation, generation_modes=list(GenerationMode),
                                           generation_config=config):
        send(case, base_url, headers, tally, role)
        if real and not case.meta.generation.mode.is_negative:  # a bad body is refused before any id is looked up
            send(with_ids(case, known), base_url, headers, tally, role)


def random_examples(operation, base_url: str, headers: dict, known: dict, tally: Tally, role: str) -> None:
    fixed = {p.name: known[p.name] for p in operation.path_parameters if p.name in known} or None

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(path_parameters=fixed))
    def run(case):
        send(case, base_url, headers, tally, role)

    run()


@pytest.mark.time_limit(900)
def test_fuzz_the_four_apis(four_services, token):
    drive, notifications = four_services
    known = known_ids(drive, notifications, token)
    tally = Tally()
    bases = {"reservations": drive.reservations.base, "inventory": drive.inventory.base,
             "bibliobus": drive.bibliobus.base, "notifications": notifications.base}
    started = time.monotonic()
    for base in bases.values():
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            roles = roles_of(operation)
            runs = [("anonymous", {})] if not roles else []
            privileged = next((r for r in PRIVILEGED if r in roles), None)
            if privileged:
                runs.append((privileged, token(privileged)))
            if "patron" in roles:
                runs.append(("patron", token("patron", CARD)))
            for role, headers in runs:
                coverage(schema, operation, base, headers, known, tally, role)
                random_examples(operation, base, headers, known, tally, role)
    print(f"fuzz: {tally.requests} requests in {time.monotonic() - started:.0f} s, statuses "
          f"{dict(sorted(tally.statuses.items()))}, {len(tally.failures)} kinds of failure")
    for (label, role, first), example in sorted(tally.failures.items()):
        print(f"--- {label} [{role}] {first}\n{example}\n")
    assert not tally.failures, "\n".join(f"{label} [{role}]: {first}" for label, role, first in sorted(tally.failures))
    assert tally.statuses[500] == 0 and tally.requests > 1000


# --- what the fuzz is built on: each field refuses what the code cannot handle, naming itself -------------------

def refused(answer, field: str) -> dict:
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    body = answer.json()
    assert field in body.get("fields", {}) or body.get("details", {}).get("field") == field, body
    return body


def not_refused(probes: list[tuple[str, object, str]]) -> list[str]:
    """(what, answer, field name) → those not answered 400 naming the field, with what they answered."""
    wrong = []
    for what, answer, name in probes:
        body = answer.json() if answer.headers.get("Content-Type", "").startswith("application/json") else {}
        body = body if isinstance(body, dict) else {}
        named = name in (body.get("fields") or {}) or (body.get("details") or {}).get("field") == name
        if answer.status_code != 400 or not named:
            wrong.append(f"{what}: {answer.status_code} {answer.text[:120]}")
    return wrong


@pytest.mark.parametrize("year", ["0001", "9999"])
def test_dates_outside_the_window_are_refused_naming_the_field(drive_factory, year):
    drive = drive_factory(bibliobus_extra={})
    first, last = f"{year}-12-30", f"{year}-12-31"
    res, bus = drive.reservations, drive.bibliobus
    shift = {"closed_from": f"{first}T08:00:00+01:00", "closed_until": f"{last}T20:00:00-05:00", "rule": "spread"}
    probes = [
        ("slots", res.get(f"/pickup-points/neighbourhood/slots?from={first}&to={last}"), "from"),
        ("calendar", res.get(f"/pickup-points/neighbourhood/calendar?from={first}&to={last}"), "from"),
        ("day sheet", res.get(f"/pickup-points/neighbourhood/day-sheet?date={first}"), "date"),
        ("stats", res.get(f"/stats?from={first}&to={last}"), "from"),
        ("closed days", res.get(f"/closed-days?from={first}&to={last}"), "from"),
        ("close a day", res.post("/closed-days", json={"pickup_point": "neighbourhood", "day": last,
                                                       "reason": "far away"}), "day"),
        ("shift preview", res.post("/due-date-shifts/preview", json=shift), "closed_from"),
        ("shift", res.post("/due-date-shifts", json=shift), "closed_from"),
        ("shift to a fixed date", res.post("/due-date-shifts/preview", json={
            "closed_from": "2030-03-02T08:00:00+01:00", "closed_until": "2030-03-03T08:00:00+01:00", "rule": "fixed",
            "date": last}), "date"),
        ("what-if", bus.post("/what-if", json={"first": first, "last": last, "enable_threshold": 3,
                                               "disable_threshold": 1}), "first"),
    ]
    wrong = not_refused(probes)
    assert not wrong, "\n".join(wrong)
    assert res.get("/closed-days?from=2030-01-01&to=2030-12-31").json() == []  # nothing was stored


@pytest.mark.parametrize("period, field", [
    (("0001-01-01T00:00:00Z", "0001-02-01T00:00:00Z"), "from"),
    (("2030-01-01T00:00:00Z", "9999-12-31T23:00:00-05:00"), "until"),
    (("2021-03-01T00:00:00Z", "2021-04-01T00:00:00Z"), "from"),  # wholly in the past
    ("past week", "until"),
    ("years ahead", "until"),
])
def test_absurd_suspensions_are_refused_and_none_is_recorded(drive, period, field):
    now = datetime.now(UTC)
    if period == "past week":
        period = ((now - timedelta(days=8)).isoformat(), (now - timedelta(days=1)).isoformat())
    elif period == "years ahead":
        period = (now.isoformat(), (now + timedelta(days=3 * 365)).isoformat())
    answer = drive.reservations.post("/continuity/suspensions",
                                     json={"from": period[0], "until": period[1], "reason": "lockdown"})
    refused(answer, field)
    assert drive.reservations.get("/continuity").json()["suspensions"] == []
    sensible = {"from": now.isoformat(), "until": (now + timedelta(days=30)).isoformat(), "reason": "lockdown"}
    assert drive.reservations.post("/continuity/suspensions", json=sensible).status_code == 201


def test_offset_beyond_64_bits_is_refused(drive):
    refused(drive.inventory.get(f"/titles?offset={2 ** 64}"), "offset")
    assert drive.inventory.get("/titles?offset=0&limit=5").status_code == 200


def test_integers_given_as_1_5_and_flags_given_as_1_are_refused(drive_factory, token):
    drive = drive_factory(bibliobus_extra={})
    patron = token("patron", CARD)
    asked = {"patron": CARD, "pickup_point": "neighbourhood", "tastes": "polars", "audience": "adult"}
    probes = [
        ("selection", drive.reservations.post("/selections", headers=patron, json={**asked, "documents": 1.5}),
         "documents"),
        ("selection, a string", drive.reservations.post("/selections", headers=patron,
                                                        json={**asked, "documents": "2"}), "documents"),
        ("slot capacity", drive.reservations.call("PUT", "/pickup-points/neighbourhood/calendar",
                                                  json={"slot_capacity": 2.5}), "slot_capacity"),
        ("thresholds", drive.bibliobus.call("PUT", "/thresholds", json={"enable_threshold": 4.5,
                                                                        "disable_threshold": 1, "reason": "try"}),
         "enable_threshold"),
        ("titles' limit", drive.inventory.get("/titles?limit=1.5"), "limit"),
        ("a stop's history", drive.bibliobus.get("/stops/x/history?limit=2.5"), "limit"),
        ("a flag as 1", drive.inventory.post("/titles/x/copies", json={
            "barcode": "B-1", "site": "central", "shelf_mark": "R 1", "plastic_cover": 1}), "plastic_cover"),
        ("a flag as a word", drive.reservations.post("/audit/reannounce", headers=token("ops"), json={
            "reservation_ids": ["r-1"], "dry_run": "no"}), "dry_run"),
    ]
    wrong = not_refused(probes)
    assert not wrong, "\n".join(wrong)
    assert drive.reservations.get(f"/patrons/{CARD}/selections", headers=patron).json() == []


def test_path_ids_longer_than_their_column_are_refused(four_services, token):
    drive, notifications = four_services
    long = "7" * 500
    probes = [
        ("contact", notifications.call("PUT", f"/patrons/{long}/contact", json={"email": "someone@example.org"}),
         "card"),
        ("contact read", notifications.get(f"/patrons/{long}/contact"), "card"),
        ("reservation", drive.reservations.get(f"/reservations/{'r' * 37}"), "reservation_id"),
        ("loans", drive.reservations.get(f"/patrons/{long}/loans"), "card"),
        ("title", drive.inventory.get(f"/titles/{'t' * 37}"), "title_id"),
        ("interest", drive.bibliobus.post(f"/stops/{'s' * 61}/interest", headers=token("staff"),
                                          json={"patron": CARD}), "stop_id"),
    ]
    wrong = not_refused(probes)
    assert not wrong, "\n".join(wrong)
    # Still a 404 within the column, and the documents say how long an id may be.
    assert drive.reservations.get(f"/reservations/{'r' * 36}").status_code == 404
    card = next(p for p in notifications.get("/openapi.json").json()["paths"]["/patrons/{card}/contact"]["get"]
                ["parameters"] if p["name"] == "card")
    assert card["schema"]["pattern"] == "^[A-Za-z0-9-]{1,40}$"


@pytest.mark.parametrize("week", [{}, {"monday": [], "friday": []}])
def test_a_week_that_never_opens_is_refused(drive, week):
    before = drive.reservations.get("/pickup-points/neighbourhood/calendar?from=2030-01-07&to=2030-01-13").json()
    refused(drive.reservations.call("PUT", "/pickup-points/neighbourhood/calendar", json={"opening_hours": week}),
            "opening_hours")
    after = drive.reservations.get("/pickup-points/neighbourhood/calendar?from=2030-01-07&to=2030-01-13").json()
    assert after == before and any(day["open"] for day in after["days"])
    tuesdays = {"opening_hours": {"tuesday": ["10:00-12:00"]}}
    assert drive.reservations.call("PUT", "/pickup-points/neighbourhood/calendar", json=tuesdays).status_code == 200
