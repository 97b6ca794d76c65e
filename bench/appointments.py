"""`make bench-appointments`: many patrons booking the same few pickup slots at once, on two reservations replicas.

Steps: drop and recreate the database `drive_bench_appointments` and the vhost `drive_bench_appointments`,
`drive setup` (migrations and broker queues), load the pickup points, insert N ready reservations straight into
the reservations database (one line each, a distinct patron card each, the pickup deadline weeks ahead: no
inventory needed), start 2 reservations processes with `nameko run` (18001, 18011; same database), give the
measured pickup point opening hours every day (`PUT /pickup-points/{id}/calendar`, capacity 3 a slot) and take
its first 100 coming slots from `GET /pickup-points/{id}/slots`. A warm-up on another pickup point is not counted.
Then N booking attempts (default 2,000, one reservation each, a slot drawn at random with a fixed seed) by C
closed-loop clients (default 50), `PUT /reservations/{id}/appointment` with the patron's own token, alternately on
each replica. 100 slots × 3 places: most attempts find their slot full (409).

    attempts            booking attempts sent (each a distinct ready reservation)
    booked              answered 200 (an appointment)
    refused_full        answered 409 "this slot is full"
    other_errors        any other answer (status, time-out, refused connection)
    attempts_per_s      attempts answered ÷ (last answer − first attempt sent)
    bookings_per_s      attempts answered 200 ÷ (last 200 answered − first attempt sent): how fast places go
    p50/p95/p99_ms      per attempt, answer − just before it was sent, whatever the answer (HdrHistogram)
    zero_overbooking    read back from the database after the run: every slot has booked ≤ capacity and booked =
                        its appointments with status 'booked', and the places booked at the point = the 200 answers
    baseline_per_s      raw PostgreSQL (psycopg2), same database, same run, once the services are stopped: C
                        connections run the same N attempts (same slots, same draw) as one transaction each,
                        `INSERT … ON CONFLICT DO NOTHING` of the slot row then the conditional `UPDATE … booked <
                        capacity`, on a scratch copy of `pickup_slots`; attempts ÷ (last answer − first attempt),
                        the median of 3 rounds (each lasts well under a second)
    ratio               attempts_per_s ÷ baseline_per_s

The services are stopped (SIGTERM) and the vhost deleted always, even after a failure; the database stays until
the next run. Service logs and `figures.json` go to `bench/results/<time>-appointments/`. Exit status 1 when a
check fails (overbooking, or an answer the database does not bear out).

    .venv/bin/python bench/appointments.py [--json] [-n 2000] [-c 50] [--slots 100] [--capacity 3] [--procs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # imported with the services' modules
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_bench  # noqa: E402
from pipeline import Http, closed_loop, new_histogram, now, percentiles_ms  # noqa: E402
from run_bench import BIN, ROOT, CpuMeter, Services, delete_vhost, log, recreate_vhost  # noqa: E402

from services.common.auth import issue_token  # noqa: E402

KEYS = ("attempts", "booked", "refused_full", "other_errors", "attempts_per_s", "bookings_per_s", "p50_ms",
        "p95_ms", "p99_ms", "zero_overbooking", "baseline_per_s", "ratio")
DATABASE = "drive_bench_appointments"
POINT, WARMUP_POINT = "central-adult", "central-youth"  # two counters of the demo network
PORT = 18001  # replicas on 18001, 18011, …
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HOURS = ["09:00-17:00"]  # every day: 32 slots of 15 minutes, so 100 slots fit in the first 4 opening days
WINDOW_DAYS = 14  # the slots are the first ones of tomorrow … tomorrow + 13 (public holidays have none)
SCRATCH = "bench_scratch_slots"


# --- the reservations, seeded ------------------------------------------------------------------------------------


def seed_reservations(url: str, point: str, prefix: str, n: int, deadline: datetime) -> list[tuple[str, str]]:
    """N reservations `ready` at `point` (one allocated line each, a distinct card each), in bulk, as the service
    leaves one once its copies are set aside. Returns (reservation id, card) pairs."""
    from sqlalchemy import insert

    from services.common.database import make_engine
    from services.reservations.models import Line, Reservation

    at = datetime.now(UTC)
    rows, lines = [], []
    for i in range(n):
        rid, card = str(uuid.uuid4()), f"{prefix}{i:06d}"
        rows.append({"id": rid, "patron": card, "pickup_point_id": point, "status": "ready", "channel": "web",
                     "placed_at": at - timedelta(days=2), "ready_at": at - timedelta(hours=1),
                     "pickup_deadline": deadline, "hold_shelf": f"{prefix}-{i % 40:02d}"})
        lines.append({"id": str(uuid.uuid4()), "reservation_id": rid, "position": 0, "title_id": str(uuid.uuid4()),
                      "title": f"Bench appointments title {i}", "material": "book", "status": "allocated",
                      "barcode": f"{prefix}-{i:06d}", "site": "central", "shelf_mark": "R BEN 1",
                      "needs_transfer": False})
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Reservation.__table__), rows)
            conn.execute(insert(Line.__table__), lines)
    finally:
        engine.dispose()
    return [(row["id"], row["patron"]) for row in rows]


# --- the calendar and its slots, over HTTP -----------------------------------------------------------------------


def set_calendar(http: Http, url: str, point: str, slot_minutes: int, capacity: int) -> None:
    body = {"opening_hours": {day: HOURS for day in WEEKDAYS}, "slot_minutes": slot_minutes,
            "slot_capacity": capacity}
    answer = http.request("PUT", f"{url}/pickup-points/{point}/calendar", json=body)
    if answer.status_code not in (200, 204):
        raise RuntimeError(f"PUT /pickup-points/{point}/calendar answered {answer.status_code}: {answer.text[:500]}")


def window() -> tuple[date, date]:
    first = datetime.now(ZoneInfo("Europe/Paris")).date() + timedelta(days=1)
    return first, first + timedelta(days=WINDOW_DAYS - 1)


def coming_slots(http: Http, url: str, point: str) -> list[dict[str, Any]]:
    first, last = window()
    answer = http.get(f"{url}/pickup-points/{point}/slots", params={"from": first.isoformat(), "to": last.isoformat()})
    if answer.status_code != 200:
        raise RuntimeError(f"GET /pickup-points/{point}/slots answered {answer.status_code}: {answer.text[:500]}")
    slots = answer.json()
    if not isinstance(slots, list):
        raise RuntimeError(f"GET /pickup-points/{point}/slots answered 200 but not a list: {answer.text[:500]}")
    return sorted(slots, key=lambda s: parse_time(s["starts_at"]))


def pick_slots(http: Http, url: str, point: str, count: int, capacity: int) -> list[dict[str, Any]]:
    """The first `count` coming slots, each empty with the capacity just set (else the run would not mean much)."""
    slots = coming_slots(http, url, point)[:count]
    if len(slots) < count:
        raise RuntimeError(f"{point} has only {len(slots)} slots in the next {WINDOW_DAYS} days (need {count})")
    odd = [s for s in slots if (s["capacity"], s["booked"], s["free"]) != (capacity, 0, capacity)]
    if odd:
        raise RuntimeError(f"{len(odd)} slot(s) of {point} are not empty with capacity {capacity}, e.g. {odd[0]}")
    return slots


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- a closed loop of attempts -----------------------------------------------------------------------------------


@dataclass
class Attempt:
    index: int
    started: float
    answered: float = 0.0
    outcome: str = "error"  # booked, full, error
    detail: str = ""


def run_attempts(n: int, concurrency: int, attempt: Callable[[int, int], tuple[str, str]]) -> list[Attempt]:
    """The closed loop of attempts: `attempt(client, index)` returns (outcome, detail); an exception counts as
    an error."""
    def one(k: int, i: int) -> Attempt:
        record = Attempt(index=i, started=now())
        try:
            record.outcome, record.detail = attempt(k, i)
        except Exception as exc:  # noqa: BLE001 — every failure is counted
            record.outcome, record.detail = "error", f"{exc.__class__.__name__}: {exc}"[:300]
        record.answered = now()
        return record
    return closed_loop(n, concurrency, one)


@dataclass
class Run:
    attempts: int
    booked: int
    full: int
    errors: int
    attempts_per_s: float
    bookings_per_s: float
    latency: dict[str, float]
    latency_booked: dict[str, float]
    latency_full: dict[str, float]
    seconds: float
    error_samples: list[str] = field(default_factory=list)


def summarise(attempts: Sequence[Attempt]) -> Run:
    every, booked, full = new_histogram(), new_histogram(), new_histogram()
    for a in attempts:
        micros = max(1, int((a.answered - a.started) * 1e6))
        every.record_value(micros)
        if a.outcome in ("booked", "full"):
            (booked if a.outcome == "booked" else full).record_value(micros)
    first = min(a.started for a in attempts)
    span = max(a.answered for a in attempts) - first
    booked_at = [a.answered for a in attempts if a.outcome == "booked"]
    booking_span = (max(booked_at) - first) if booked_at else 0.0
    counts = Counter(a.outcome for a in attempts)
    errors = [f"#{a.index}: {a.detail}" for a in attempts if a.outcome == "error"]
    return Run(attempts=len(attempts), booked=counts["booked"], full=counts["full"], errors=counts["error"],
               attempts_per_s=round(len(attempts) / span, 1) if span else 0.0,
               bookings_per_s=round(len(booked_at) / booking_span, 1) if booking_span else 0.0,
               latency=percentiles_ms(every), latency_booked=percentiles_ms(booked),
               latency_full=percentiles_ms(full), seconds=round(span, 2), error_samples=errors[:5])


# --- booking through the service -------------------------------------------------------------------------------


def booker(http: Http, urls: Sequence[str], reservations: Sequence[tuple[str, str]], slots: Sequence[dict],
           choices: Sequence[int]) -> Callable[[int, int], tuple[str, str]]:
    """Attempt i: reservation i books slot choices[i] with its patron's own token, on replica i mod R."""
    tokens = [f"Bearer {issue_token({}, 'patron', card)}" for _, card in reservations]

    def attempt(_worker: int, i: int) -> tuple[str, str]:
        reservation_id, _ = reservations[i]
        answer = http.request("PUT", f"{urls[i % len(urls)]}/reservations/{reservation_id}/appointment",
                              json={"starts_at": slots[choices[i]]["starts_at"]},
                              headers={"Authorization": tokens[i]})
        if answer.status_code == 200:
            return "booked", ""
        if answer.status_code == 409 and "this slot is full" in answer.text:
            return "full", ""
        return "error", f"{answer.status_code} {answer.text[:200]}"

    return attempt


def book_all(http: Http, urls: Sequence[str], reservations: Sequence[tuple[str, str]], slots: Sequence[dict],
             choices: Sequence[int], concurrency: int) -> list[Attempt]:
    return run_attempts(len(reservations), concurrency, booker(http, urls, reservations, slots, choices))


# --- what the database says afterwards -------------------------------------------------------------------------


def check(url: str, point: str, reservations: Sequence[tuple[str, str]], slots: Sequence[dict],
          choices: Sequence[int], attempts: Sequence[Attempt], api_after: Sequence[dict]) -> dict[str, Any]:
    """Zero overbooking, read back from pickup_slots and appointments (every slot of every point), and whether the
    answers are borne out: the reservations answered 200 are exactly those with a booked appointment, each in the
    slot it asked for; a slot that refused someone as full is full; the API's own slot list agrees."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT s.pickup_point_id, s.starts_at, s.capacity, s.booked, "
                "       count(a.id) FILTER (WHERE a.status = 'booked') AS appointments "
                "FROM pickup_slots s LEFT JOIN appointments a ON a.slot_id = s.id "
                "GROUP BY s.id, s.pickup_point_id, s.starts_at, s.capacity, s.booked")).all()
            booked_rows = conn.execute(text(
                "SELECT reservation_id, starts_at FROM appointments WHERE status = 'booked' AND pickup_point_id = :p"),
                {"p": point}).all()
    finally:
        engine.dispose()
    overbooked = [r for r in rows if r.booked > r.capacity]
    mismatched = [r for r in rows if r.booked != r.appointments]
    here = {r.starts_at: r for r in rows if r.pickup_point_id == point}
    places_booked = sum(r.booked for r in here.values())
    answered_200 = sum(1 for a in attempts if a.outcome == "booked")

    asked = {reservations[a.index][0]: parse_time(slots[choices[a.index]]["starts_at"])
             for a in attempts if a.outcome == "booked"}
    recorded = {r.reservation_id: r.starts_at for r in booked_rows}
    not_recorded = [rid for rid in asked if rid not in recorded]
    unanswered = [rid for rid in recorded if rid not in asked]
    wrong_slot = [rid for rid, at in asked.items() if rid in recorded and recorded[rid] != at]
    refused_at = {parse_time(slots[choices[a.index]]["starts_at"]) for a in attempts if a.outcome == "full"}
    false_full = [at for at in refused_at if at not in here or here[at].booked < here[at].capacity]
    api = {parse_time(s["starts_at"]): s for s in api_after}
    api_disagrees = [at for at, s in api.items()
                     if (s["booked"], s["capacity"]) != ((here[at].booked, here[at].capacity) if at in here
                                                        else (0, s["capacity"]))]
    api_missing = [at for at in {parse_time(s["starts_at"]) for s in slots} if at not in api]
    zero_overbooking = not overbooked and not mismatched and places_booked == answered_200
    consistent = not (not_recorded or unanswered or wrong_slot or false_full or api_disagrees or api_missing)
    return {"zero_overbooking": zero_overbooking, "consistent": consistent, "slot_rows": len(rows),
            "slot_rows_at_point": len(here), "overbooked_slots": len(overbooked), "mismatched_slots": len(mismatched),
            "places_booked": places_booked, "answered_200": answered_200, "full_slots": sum(
                1 for r in here.values() if r.booked == r.capacity),
            "not_recorded": len(not_recorded), "unanswered": len(unanswered), "wrong_slot": len(wrong_slot),
            "false_full": len(false_full), "api_disagrees": len(api_disagrees), "api_missing": len(api_missing),
            "examples": [f"slot {r.pickup_point_id} {r.starts_at.isoformat()}: booked {r.booked}, capacity "
                         f"{r.capacity}, {r.appointments} booked appointment(s)" for r in (overbooked + mismatched)[:3]]
            + [f"booked without a 200: {rid}" for rid in unanswered[:2]]
            + [f"200 without an appointment: {rid}" for rid in not_recorded[:2]]
            + [f"refused as full but not full: {at.isoformat()}" for at in false_full[:2]]
            + [f"/slots disagrees: {api[at]}" for at in api_disagrees[:2]]}


# --- the raw PostgreSQL baseline -------------------------------------------------------------------------------


def measure_baseline(dsn: str, point: str, slots: Sequence[dict], choices: Sequence[int], capacity: int,
                     concurrency: int, runs: int = 3) -> tuple[Run, dict[str, Any]]:
    """`runs` rounds (a fresh scratch table each: they last well under a second) of `baseline_round`; the median
    round by attempts/s, with every round's check summed."""
    rounds = [baseline_round(dsn, point, slots, choices, capacity, concurrency) for _ in range(max(1, runs))]
    rounds.sort(key=lambda r: r[0].attempts_per_s)
    median, _ = rounds[len(rounds) // 2]
    overbooked = sum(c["overbooked_slots"] for _, c in rounds)
    wrong = sum(1 for run, c in rounds if c["places_booked"] != run.booked)
    return median, {"overbooked_slots": overbooked, "places_booked": rounds[len(rounds) // 2][1]["places_booked"],
                    "rounds_not_matching_200s": wrong, "rounds": len(rounds),
                    "rounds_attempts_per_s": [r.attempts_per_s for r, _ in rounds]}


def baseline_round(dsn: str, point: str, slots: Sequence[dict], choices: Sequence[int], capacity: int,
                   concurrency: int) -> tuple[Run, dict[str, int]]:
    """The same attempts on a scratch copy of pickup_slots, each one transaction on its own psycopg2 connection
    (opened before the clock): INSERT … ON CONFLICT DO NOTHING, then the conditional UPDATE; COMMIT when it took a
    place, ROLLBACK when the slot was full (as the service's refused booking)."""
    import psycopg2

    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
        cur.execute(f"CREATE TABLE {SCRATCH} (LIKE pickup_slots INCLUDING ALL)")
    starts = [(parse_time(s["starts_at"]), parse_time(s["ends_at"])) for s in slots]
    connections = [psycopg2.connect(dsn) for _ in range(concurrency)]

    def attempt(worker: int, i: int) -> tuple[str, str]:
        conn = connections[worker]
        starts_at, ends_at = starts[choices[i]]
        try:
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {SCRATCH} (id, pickup_point_id, starts_at, ends_at, capacity, booked) "
                            "VALUES (%s, %s, %s, %s, %s, 0) ON CONFLICT DO NOTHING",
                            (str(uuid.uuid4()), point, starts_at, ends_at, capacity))
                cur.execute(f"UPDATE {SCRATCH} SET booked = booked + 1 WHERE pickup_point_id = %s AND "
                            "starts_at = %s AND booked < capacity RETURNING id", (point, starts_at))
                taken = cur.fetchone()
        except Exception:
            conn.rollback()
            raise
        if taken is None:
            conn.rollback()
            return "full", ""
        conn.commit()
        return "booked", ""

    try:
        run = summarise(run_attempts(len(choices), concurrency, attempt))
        with admin.cursor() as cur:
            cur.execute(f"SELECT count(*) FILTER (WHERE booked > capacity), coalesce(sum(booked), 0) FROM {SCRATCH}")
            overbooked, places = cur.fetchone()
            cur.execute(f"DROP TABLE {SCRATCH}")
    finally:
        for conn in connections:
            conn.close()
        admin.close()
    return run, {"overbooked_slots": overbooked, "places_booked": places}


# --- what is printed -------------------------------------------------------------------------------------------


def report(figures: dict, service: Run, baseline: Run, checked: dict, base_check: dict, args: argparse.Namespace,
           extra: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False, width=None if sys.stdout.isatty() else 130)
    table = Table(title=f"Drive appointments: {args.attempts} booking attempts on {args.slots} slots × "
                        f"{args.capacity} places, concurrency {args.concurrency}")
    table.add_column("figure")
    table.add_column(f"service ({args.procs} reservations processes, HTTP)", justify="right")
    table.add_column("raw PostgreSQL (psycopg2)", justify="right")
    places = args.slots * args.capacity
    table.add_row("attempts", str(service.attempts), str(baseline.attempts))
    table.add_row("booked (200) / places", f"{service.booked} / {places}", f"{baseline.booked} / {places}")
    table.add_row("refused full (409)", str(service.full), str(baseline.full))
    table.add_row("other errors", str(service.errors), str(baseline.errors))
    table.add_row("attempts answered /s", f"{service.attempts_per_s:.1f}", f"{baseline.attempts_per_s:.1f}")
    table.add_row("successful bookings /s (until the last 200)", f"{service.bookings_per_s:.1f}",
                  f"{baseline.bookings_per_s:.1f}")
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        table.add_row(f"latency {key[:3]} ms (every attempt)", f"{service.latency[key]:.1f}",
                      f"{baseline.latency[key]:.1f}")
    for label, run, base in (("200", service.latency_booked, baseline.latency_booked),
                             ("409", service.latency_full, baseline.latency_full)):
        table.add_row(f"latency p50 / p99 ms of a {label}", f"{run['p50_ms']:.1f} / {run['p99_ms']:.1f}",
                      f"{base['p50_ms']:.1f} / {base['p99_ms']:.1f}")
    table.add_row("measured over s", f"{service.seconds:.2f}",
                  f"{baseline.seconds:.2f} (median of {base_check['rounds']} rounds: "
                  f"{', '.join(f'{r:.0f}' for r in base_check['rounds_attempts_per_s'])}/s)")
    table.add_row("ratio service / raw (attempts/s)", f"{figures['ratio']:.3f}", "")
    verdict = "[green]yes[/]" if checked["zero_overbooking"] else "[bold red]NO — VIOLATED[/]"
    table.add_row("zero overbooking (database after the run)", verdict,
                  "yes" if base_check["overbooked_slots"] == 0 and not base_check["rounds_not_matching_200s"]
                  else "[bold red]NO[/]")
    table.add_row("  slots over capacity / booked ≠ its appointments",
                  f"{checked['overbooked_slots']} / {checked['mismatched_slots']} of {checked['slot_rows']} rows",
                  f"{base_check['overbooked_slots']} / -")
    table.add_row("  places booked at the point = answers 200",
                  f"{checked['places_booked']} = {checked['answered_200']}",
                  f"{base_check['places_booked']} = {baseline.booked}")
    table.add_row("answers borne out by the database", "[green]yes[/]" if checked["consistent"] else "[bold red]NO[/]",
                  "")
    table.add_row("  200 without appointment / appointment without 200 / other slot",
                  f"{checked['not_recorded']} / {checked['unanswered']} / {checked['wrong_slot']}", "")
    table.add_row("  refused as full but not full / GET /slots disagrees",
                  f"{checked['false_full']} / {checked['api_disagrees'] + checked['api_missing']}", "")
    table.add_row("  slots full at the end", f"{checked['full_slots']} of {args.slots}", "")
    for key, value in extra.items():
        table.add_row(key, value, "")
    console.print(table)
    for sample in service.error_samples:
        console.print(f"[red]error:[/] {sample}", markup=True, highlight=False)
    for sample in baseline.error_samples:
        console.print(f"[red]baseline error:[/] {sample}", markup=True, highlight=False)
    for example in checked["examples"]:
        console.print(f"[red]check:[/] {example}", markup=True, highlight=False)
    if args.json:
        sys.stdout.flush()
        print(json.dumps({k: figures[k] for k in KEYS}), flush=True)


# --- the run ---------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--attempts", type=int, default=2000, help="booking attempts, one reservation each (2000)")
    p.add_argument("-c", "--concurrency", type=int, default=50, help="closed-loop clients (default 50)")
    p.add_argument("--slots", type=int, default=100, help="slots the attempts choose from (default 100)")
    p.add_argument("--capacity", type=int, default=3, help="places per slot (default 3)")
    p.add_argument("--slot-minutes", type=int, default=15, help="slot length (default 15)")
    p.add_argument("--procs", type=int, default=2, help="reservations processes, one database (default 2)")
    p.add_argument("--warmup", type=int, default=100, help="attempts first on another pickup point, not counted")
    p.add_argument("--seed", type=int, default=7, help="seed of the slots drawn (default 7)")
    p.add_argument("--baseline-runs", type=int, default=3, help="rounds of the raw baseline; the median counts (3)")
    run_bench.add_infra_arguments(p, "drive_bench_appointments", json_flag=True)
    return p


def main() -> int:
    args = parser().parse_args()
    started = time.monotonic()
    run = run_bench.start_run("-appointments")
    if run is None:
        return 3
    results, lock = run

    amqp = f"amqp://guest:guest@{args.broker}/{quote(args.vhost, safe='')}"
    url = run_bench.recreate_database(args.postgres, DATABASE)
    recreate_vhost(args.management, args.vhost, "guest")
    env = {**os.environ, "AMQP_URI": amqp.replace("amqp://", "pyamqp://", 1), "LOG_LEVEL": "WARNING",
           "RESERVATIONS_DB_URL": url}
    setup = subprocess.run([str(BIN / "drive"), "setup"], cwd=ROOT, env=env, capture_output=True, text=True)
    if setup.returncode != 0:
        log(f"drive setup failed:\n{setup.stdout}\n{setup.stderr}")
        return 2
    points = run_bench.load_pickup_points(url)
    deadline = datetime.now(UTC) + timedelta(days=WINDOW_DAYS + 28)  # weeks after the last slot of the window
    reservations = seed_reservations(url, POINT, "BA", args.attempts, deadline)
    warm = seed_reservations(url, WARMUP_POINT, "BW", args.warmup, deadline) if args.warmup else []
    log(f"database and vhost {args.vhost!r} recreated; {setup.stdout.strip()}; {points} pickup points; "
        f"{len(reservations)} + {len(warm)} (warm-up) ready reservations seeded")

    rng = random.Random(args.seed)
    choices = [rng.randrange(args.slots) for _ in range(args.attempts)]
    warm_choices = [rng.randrange(args.slots) for _ in range(args.warmup)]
    services = Services(env, results, args.launcher)
    cpu = CpuMeter(services)
    try:
        urls = [services.start("reservations", k, PORT + 10 * k) for k in range(args.procs)]
        services.wait_healthy()
        log(f"{args.procs} reservations processes healthy after {time.monotonic() - started:.1f} s; "
            f"logs in {results.relative_to(ROOT)}")
        http = Http(issue_token({}, "staff", "bench"))
        for point in (POINT, WARMUP_POINT):
            set_calendar(http, urls[0], point, args.slot_minutes, args.capacity)
        slots = pick_slots(http, urls[-1], POINT, args.slots, args.capacity)
        log(f"{POINT}: {args.slots} slots from {slots[0]['starts_at']} to {slots[-1]['starts_at']}, "
            f"{args.capacity} places each")
        if warm:
            warm_slots = pick_slots(http, urls[0], WARMUP_POINT, args.slots, args.capacity)
            warm_run = summarise(book_all(http, urls, warm, warm_slots, warm_choices, args.concurrency))
            log(f"warm-up on {WARMUP_POINT}: {warm_run.booked} booked, {warm_run.full} full, "
                f"{warm_run.errors} errors (not counted)")
        cpu("start")
        attempts = book_all(http, urls, reservations, slots, choices, args.concurrency)
        cpu("end")
        service = summarise(attempts)
        log(f"service: {service.attempts} attempts in {service.seconds} s, {service.booked} booked, "
            f"{service.full} full, {service.errors} other; checking the database")
        api_after = coming_slots(http, urls[0], POINT)
        checked = check(url, POINT, reservations, slots, choices, attempts, api_after)
        services.stop()  # before the baseline: its connections and CPU to itself
        log("services stopped; now the raw PostgreSQL baseline")
        dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
        baseline, base_check = measure_baseline(dsn, POINT, slots, choices, args.capacity, args.concurrency,
                                                args.baseline_runs)
    finally:
        services.stop()
        if not args.keep_vhost:
            delete_vhost(args.management, args.vhost)
    problems = run_bench.service_problems(services, cpu, log)

    figures = {"attempts": service.attempts, "booked": service.booked, "refused_full": service.full,
               "other_errors": service.errors, "attempts_per_s": service.attempts_per_s,
               "bookings_per_s": service.bookings_per_s, **service.latency,
               "zero_overbooking": checked["zero_overbooking"], "baseline_per_s": baseline.attempts_per_s,
               "ratio": round(service.attempts_per_s / baseline.attempts_per_s, 3) if baseline.attempts_per_s else 0.0}
    cpu_rows = {k: v.replace("ms/resv", "ms/attempt") for k, v in cpu.report(service.attempts).items()}
    first, last = window()
    extra = {"processes": f"{args.procs} reservations ({', '.join(urls)}), one database; attempts alternate",
             "slots": f"{POINT}: the first {args.slots} of {first} … {last} (every day {', '.join(HOURS)}, "
                      f"{args.slot_minutes} min); seed {args.seed}",
             "service warnings/errors while measured": str(sum(len(v) for v in problems.values())),
             **cpu_rows,
             "whole run s": f"{time.monotonic() - started:.0f}"}
    details = {"service": service.__dict__, "baseline": baseline.__dict__, "check": checked,
               "baseline_check": base_check, "extra": extra}
    (results / "figures.json").write_text(json.dumps({**figures, **details}, indent=2, default=str))
    report(figures, service, baseline, checked, base_check, args, extra)
    ok = (checked["zero_overbooking"] and checked["consistent"] and base_check["overbooked_slots"] == 0
          and not base_check["rounds_not_matching_200s"])
    if not ok:
        log("CHECK FAILED: see the rows under 'zero overbooking' and 'answers borne out by the database'")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
