"""Bibliobus demand at scale: N demand signals (reservation_placed at a stop) over S stops through the broker
into the bibliobus service, then one evaluation of every stop and a 90-day what-if, next to a raw pika
baseline measured in the same run (publish with confirms + consume with acks, same count).

    .venv/bin/python bench/demand.py [--signals 100000] [--stops 200] [--procs 1] [--json] [--py-spy SECONDS]

Steps: recreate the database `drive_bench_bibliobus` and the vhost `drive_bench_demand`, migrate, declare the
bibliobus queues, add S stops, start the service(s) with `nameko run` (LOG_LEVEL=WARNING, the timer's rounds
out of the way), publish the signals with C publisher threads (confirms) — placed_at spread over the last 90
days, patrons drawn from a pool — and time until the service recorded them all (CPU per part over that window);
time one evaluation round of every stop (the timer's code, `control.evaluate_stops`, in this process against the
same database); time `POST /what-if` over the last 90 days for every stop, `--what-if-runs` times (the slowest
is the figure); then the baseline, and each service process's resident memory. Stops what it started, always.
Targets (2-core machine, issue 14): ingest ≥ 2,000 signals/s, evaluation < 1 s, 90-day what-if over 200 stops
< 0.5 s, each service process < 150 MB RSS after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import requests

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # imported with the services' modules
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import run_bench  # noqa: E402
from pipeline import measure_baseline  # noqa: E402
from run_bench import CpuMeter, Services, delete_vhost, recreate_database, recreate_vhost  # noqa: E402

DATABASE = "drive_bench_bibliobus"
PORT = 18004
TARGETS = {"ingest_per_s": 2000, "evaluation_s": 1.0, "what_if_90d_s": 0.5, "rss_mb": 150}
# run_bench's process manager starts a service by its `module:Class`; bibliobus is not one of its own two.
run_bench.SERVICE_CLASSES.setdefault("bibliobus", run_bench.ALL_SERVICE_CLASSES["bibliobus"])


def log(message: str) -> None:
    print(f"[demand {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Meter(CpuMeter):
    """run_bench's CPU meter, with PostgreSQL's autovacuum workers left to "other processes" (as the notifications
    bench): they come and go during the ingest, and one that ends inside the window would take its CPU out."""

    @staticmethod
    def _cmdline(pid: str) -> str:
        line = CpuMeter._cmdline(pid)
        return "" if "autovacuum" in line else line


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of a process now, and its peak (VmRSS, VmHWM), in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def prepare(url: str, amqp: str, stops: int) -> list[str]:
    """Migrations, queues, and S stops (through the service's own code: the tour module)."""
    from sqlalchemy.orm import Session

    from services.bibliobus import tour
    from services.bibliobus.models import Outbox
    from services.bibliobus.policy import Policy
    from services.bibliobus.service import BibliobusService
    from services.common.database import make_engine
    from services.common.messaging import declare_topology
    from services.common.migrate import upgrade
    from services.common.relay import Events

    upgrade("bibliobus", url)
    declare_topology([BibliobusService], {"AMQP_URI": amqp})
    ids = [f"stop-{n:03d}" for n in range(stops)]
    slots = [{"weekday": "tuesday", "arrives": "09:30", "departs": "11:00"}]
    engine = make_engine(url, pool_size=1)
    with Session(engine) as session, session.begin():
        events = Events("bibliobus", Outbox, kick=lambda: None)
        for n, stop_id in enumerate(ids):
            tour.add_stop(session, events, Policy({}), {
                "id": stop_id, "name": f"Arrêt {n}", "district": f"Quartier {n % 20}", "latitude": 46.7 + n / 1000,
                "longitude": 4.8 + n / 1000, "capacity_per_visit": 10, "visits": slots}, datetime.now(UTC))
    engine.dispose()
    return ids


def envelopes(n: int, stops: list[str], patrons: int, seed: int = 11) -> list[bytes]:
    """`reservation_placed` at stops, as the reservations service publishes it, serialised before the clock runs."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    bodies = []
    for _ in range(n):
        stop = rng.choice(stops)
        placed = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
        bodies.append(json.dumps({
            "id": str(uuid.uuid4()), "type": "reservation_placed", "version": 2, "source": "reservations",
            "occurred_at": placed.isoformat(), "data": {
                "reservation_id": str(uuid.uuid4()), "patron": f"P{rng.randrange(patrons)}",
                "pickup_point": {"id": stop, "name": stop, "kind": "bibliobus_stop", "site": "central"},
                "channel": "web", "placed_at": placed.isoformat(), "waiting_for_stop": True,
                "lines": [{"line_id": str(uuid.uuid4()), "title_id": "t1", "title": "Le voyage", "material": "book",
                           "barcode": None}]}}).encode())
    return bodies


def publish(amqp: str, bodies: list[bytes], concurrency: int) -> None:
    """C connections, each waiting for its publisher confirm before the next message (as the outbox relay)."""
    params = pika.URLParameters(amqp)
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json", content_encoding="utf-8")

    def run(share: list[bytes]) -> None:
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        channel.confirm_delivery()
        for body in share:
            channel.basic_publish("reservations.events", "reservation_placed", body, properties)
        connection.close()

    threads = [threading.Thread(target=run, args=(bodies[k::concurrency],), daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def recorded(engine: Any) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM demand_signals")).scalar_one()


def checks(engine: Any) -> dict:
    """What the service recorded, read back: one signal and one replica row per reservation placed."""
    from sqlalchemy import text

    with engine.connect() as conn:
        signals, distinct = conn.execute(text(
            "SELECT count(*), count(DISTINCT reservation_id) FROM demand_signals")).one()
        replicas = conn.execute(text("SELECT count(*) FROM stop_reservations")).scalar_one()
        enabled = conn.execute(text("SELECT count(*) FROM stops WHERE enabled")).scalar_one()
    return {"duplicates": signals - distinct, "replicas": replicas, "stops_enabled": enabled}


def ingest(engine: Any, amqp: str, bodies: list[bytes], concurrency: int, timeout: float, cpu: CpuMeter) -> dict:
    n = len(bodies)
    cpu("start")
    started = time.monotonic()
    publisher = threading.Thread(target=publish, args=(amqp, bodies, concurrency), daemon=True)
    publisher.start()
    published_s, count = None, 0
    while time.monotonic() - started < timeout:
        time.sleep(0.25)
        if published_s is None and not publisher.is_alive():
            published_s = time.monotonic() - started
        count = recorded(engine)
        if count >= n:
            break
    seconds = time.monotonic() - started
    cpu("end")
    return {"signals": n, "recorded": count, "ingest_s": round(seconds, 2),
            "ingest_per_s": round(count / seconds, 1), "publish_s": round(published_s or seconds, 2)}


def evaluate_once(url: str) -> dict:
    """One round over every stop, as the timer runs it (without the claim), committed."""
    from sqlalchemy.orm import Session

    from services.bibliobus.control import evaluate_stops
    from services.bibliobus.models import Outbox
    from services.bibliobus.policy import Policy
    from services.common.database import make_engine
    from services.common.relay import Events

    engine = make_engine(url, pool_size=1)
    events = Events("bibliobus", Outbox, kick=lambda: None)
    started = time.monotonic()
    with Session(engine) as session, session.begin():
        switched = evaluate_stops(session, events, Policy({}), datetime.now(UTC), round_=True)
    seconds = time.monotonic() - started
    engine.dispose()
    return {"evaluation_s": round(seconds, 3), "stops_switched": len(switched)}


def what_if(base: str, stops: int, runs: int, cpu: CpuMeter) -> dict:
    """`POST /what-if` over the last 90 days (yesterday and the 89 days before), every stop, `runs` times: the
    slowest is the figure. Checked: 90 days and every stop in each answer."""
    from services.common.auth import issue_token

    last = date.today() - timedelta(days=1)
    body = {"first": str(last - timedelta(days=89)), "last": str(last), "enable_threshold": 60,
            "disable_threshold": 40, "consecutive_evaluations": 3}
    headers = {"Authorization": f"Bearer {issue_token({}, 'analyst', 'bench')}"}
    seconds = []
    cpu("start")
    for _ in range(runs):
        started = time.monotonic()
        answer = requests.post(f"{base}/what-if", json=body, headers=headers, timeout=120)
        seconds.append(time.monotonic() - started)
        answer.raise_for_status()
        result = answer.json()
        if len(result["days"]) != 90 or len(result["stops"]) != stops:
            raise RuntimeError(f"what-if answered {len(result['days'])} days, {len(result['stops'])} stops")
    cpu("end")
    open_days = sum(s["open_days"] for s in result["stops"])
    return {"what_if_90d_s": round(max(seconds), 3), "what_if_median_s": round(statistics.median(seconds), 3),
            "what_if_runs": runs, "what_if_open_stop_days": open_days, "what_if_bytes": len(answer.content)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--signals", type=int, default=100_000)
    p.add_argument("--stops", type=int, default=200)
    p.add_argument("--patrons", type=int, default=30_000, help="size of the pool patrons are drawn from")
    p.add_argument("--procs", type=int, default=1, help="bibliobus processes (replicas on one queue)")
    p.add_argument("-c", "--concurrency", type=int, default=20, help="publisher connections")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--what-if-runs", type=int, default=3, help="POST /what-if this many times (the slowest counts)")
    p.add_argument("--py-spy", type=int, default=0, metavar="SECONDS",
                   help="profile the first process with py-spy (raw, --nonblocking) for SECONDS from the start of "
                        "the ingest")
    run_bench.add_infra_arguments(p, "drive_bench_demand", json_flag=True)
    return p


def main() -> int:
    args = parser().parse_args()
    run = run_bench.start_run("-demand")
    if run is None:
        return 3
    results, lock = run

    from sqlalchemy import create_engine

    amqp = f"amqp://guest:guest@{args.broker}/{quote(args.vhost, safe='')}"
    url = recreate_database(args.postgres, DATABASE)
    recreate_vhost(args.management, args.vhost, "guest")
    env = {**os.environ, "AMQP_URI": amqp.replace("amqp://", "pyamqp://", 1), "BIBLIOBUS_DB_URL": url,
           "LOG_LEVEL": "WARNING", "DEMAND_EVALUATION_SECONDS": "3600"}
    services = Services(env, results, args.launcher)
    engine = create_engine(url)
    cpu, what_if_cpu, spy = Meter(services), Meter(services), None
    figures: dict = {}
    try:
        stops = prepare(url, env["AMQP_URI"], args.stops)
        for k in range(args.procs):  # replicas on 18004, 18014, …: one queue, one database
            services.start("bibliobus", k, PORT + 10 * k)
        services.wait_healthy()
        bodies = envelopes(args.signals, stops, args.patrons)
        log(f"{args.stops} stops, {args.procs} bibliobus process(es) healthy; publishing {args.signals} signals")
        if args.py_spy:
            spy = run_bench.profile(services.procs[0][2].pid, args.py_spy, results / "bibliobus.pyspy.txt")
        figures = ingest(engine, amqp, bodies, args.concurrency, args.timeout, cpu)
        figures |= checks(engine)
        log(f"ingested: {figures}")
        figures |= evaluate_once(url)
        figures |= what_if(services.procs[0][1], args.stops, args.what_if_runs, what_if_cpu)
        log("now the raw pika baseline")
        baseline = measure_baseline(amqp, n=args.signals, concurrency=args.concurrency)
        figures |= {"baseline_per_s": baseline.per_s, "baseline_s": baseline.seconds,
                    "ingest_vs_baseline": round(figures["ingest_per_s"] / baseline.per_s, 3)}
        for name, _, proc, _ in services.procs:
            figures[f"rss_mb {name}"], figures[f"rss_peak_mb {name}"] = rss_mb(proc.pid)
        run_bench.finish_profile(spy, args.py_spy)
    finally:
        services.stop()
        engine.dispose()
        if not args.keep_vhost:
            delete_vhost(args.management, args.vhost)
    problems = run_bench.service_problems(services, cpu, log)
    figures["service_warnings"] = sum(len(v) for v in problems.values())
    figures["cpu_ingest"] = {k.removeprefix("CPU "): v.replace("ms/resv", "ms/signal")
                             for k, v in cpu.report(args.signals).items()}
    figures["cpu_what_if"] = {k.removeprefix("CPU "): v.replace("ms/resv", "ms/what-if")
                              for k, v in what_if_cpu.report(args.what_if_runs).items()}
    report(figures, args)
    (results / "figures.json").write_text(json.dumps(figures, indent=2))
    lock.close()
    return 0 if figures["recorded"] == args.signals and figures["duplicates"] == 0 else 1


def report(figures: dict, args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bibliobus demand: {args.signals:,} signals over {args.stops} stops, {args.procs} process(es)")
    for column in ("figure", "measured", "target"):
        table.add_column(column)
    table.add_row("ingest (signals/s, through the broker)", f"{figures['ingest_per_s']:,}",
                  f"≥ {TARGETS['ingest_per_s']:,}")
    table.add_row("raw pika, same count (msg/s)", f"{figures['baseline_per_s']:,}", "")
    table.add_row("ratio ingest / raw", str(figures["ingest_vs_baseline"]), "")
    table.add_row("signals recorded / duplicates / replica rows",
                  f"{figures['recorded']:,} of {figures['signals']:,} / {figures['duplicates']} / "
                  f"{figures['replicas']:,}", "all / 0 / all")
    table.add_row("published (confirmed) in s", str(figures["publish_s"]), "")
    table.add_row("evaluate every stop once (s)", str(figures["evaluation_s"]), f"< {TARGETS['evaluation_s']}")
    table.add_row(f"90-day what-if, {args.stops} stops, over HTTP (s, slowest of {figures['what_if_runs']})",
                  f"{figures['what_if_90d_s']} (median {figures['what_if_median_s']})",
                  f"< {TARGETS['what_if_90d_s']}")
    for key, value in figures.items():
        if key.startswith("rss_mb "):
            name = key.removeprefix("rss_mb ")
            table.add_row(f"RSS {name} after the run (MB; peak)", f"{value} ({figures[f'rss_peak_mb {name}']})",
                          f"< {TARGETS['rss_mb']}")
    table.add_row("service warnings/errors while ingesting", str(figures["service_warnings"]), "0")
    for key, value in figures["cpu_ingest"].items():
        table.add_row(f"CPU ingest: {key}", value, "")
    for key, value in figures["cpu_what_if"].items():
        table.add_row(f"CPU what-if: {key}", value, "")
    console = Console(stderr=False, width=None if sys.stdout.isatty() else 130)
    console.print(table)
    if args.json:
        sys.stdout.flush()
        print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    sys.exit(main())
