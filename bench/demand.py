"""Bibliobus demand at scale: N demand signals (reservation_placed at a stop) over S stops through the broker
into the bibliobus service, then one evaluation of every stop and a 90-day what-if, next to a raw pika
baseline measured in the same run (publish with confirms + consume with acks, same count).

    .venv/bin/python bench/demand.py [--signals 100000] [--stops 200] [--procs 1] [--json]

Steps: recreate the database `drive_bench_bibliobus` and the vhost `drive_bench_demand`, migrate, declare the
bibliobus queues, add S stops, start the service(s) with `nameko run` (LOG_LEVEL=WARNING, the timer's rounds
out of the way), publish the signals with C publisher threads (confirms) — placed_at spread over the last 90
days, patrons drawn from a pool — and time until the service recorded them all; time one evaluation round of
every stop (the timer's code, `control.evaluate_stops`, in this process against the same database); time
`POST /what-if` over the last 90 days; then the baseline. Stops what it started, always.
Targets (2-core machine): ingest ≥ 1,000 signals/s, evaluation < 1 s, 90-day what-if < 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pika
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import measure_baseline  # noqa: E402
from run_bench import delete_vhost, recreate_database, recreate_vhost  # noqa: E402

DATABASE = "drive_bench_bibliobus"
TARGETS = {"ingest_per_s": 1000, "evaluation_s": 1.0, "what_if_90d_s": 5.0}


def log(message: str) -> None:
    print(f"[demand {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def recorded(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM demand_signals")).scalar_one()
    engine.dispose()
    return count


def start_services(env: dict, procs: int, logs: Path) -> list[tuple[subprocess.Popen, str]]:
    started = []
    for k in range(procs):
        port = 18004 + 10 * k
        out = (logs / f"bibliobus-{k}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "nameko", "run", "--config", str(ROOT / "services/bibliobus/config.yaml"),
             "services.bibliobus.service:BibliobusService"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**env, "BIBLIOBUS_ADDRESS": f"127.0.0.1:{port}"})
        started.append((proc, f"http://127.0.0.1:{port}"))
    for proc, url in started:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bibliobus exited ({proc.returncode}); see {logs}")
            try:
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bibliobus not healthy after 60 s; see {logs}")
            time.sleep(0.2)
    return started


def stop_services(started: list[tuple[subprocess.Popen, str]]) -> None:
    for proc, _ in started:
        if proc.poll() is None:
            proc.terminate()
    for proc, _ in started:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def ingest(url: str, amqp: str, n: int, stops: list[str], patrons: int, concurrency: int,
           timeout: float) -> dict:
    bodies = envelopes(n, stops, patrons)
    started = time.monotonic()
    publisher = threading.Thread(target=publish, args=(amqp, bodies, concurrency), daemon=True)
    publisher.start()
    published_s, count = None, 0
    while time.monotonic() - started < timeout:
        time.sleep(0.25)
        if published_s is None and not publisher.is_alive():
            published_s = time.monotonic() - started
        count = recorded(url)
        if count >= n:
            break
    seconds = time.monotonic() - started
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


def what_if(base: str) -> dict:
    from services.common.auth import issue_token

    last = date.today() - timedelta(days=1)
    body = {"first": str(last - timedelta(days=89)), "last": str(last), "enable_threshold": 60,
            "disable_threshold": 40, "consecutive_evaluations": 3}
    headers = {"Authorization": f"Bearer {issue_token({}, 'analyst', 'bench')}"}
    started = time.monotonic()
    answer = requests.post(f"{base}/what-if", json=body, headers=headers, timeout=120)
    seconds = time.monotonic() - started
    answer.raise_for_status()
    open_days = sum(s["open_days"] for s in answer.json()["stops"])
    return {"what_if_90d_s": round(seconds, 3), "what_if_open_stop_days": open_days}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--signals", type=int, default=100_000)
    p.add_argument("--stops", type=int, default=200)
    p.add_argument("--patrons", type=int, default=30_000, help="size of the pool patrons are drawn from")
    p.add_argument("--procs", type=int, default=1, help="bibliobus processes (replicas on one queue)")
    p.add_argument("-c", "--concurrency", type=int, default=20, help="publisher connections")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--broker", default="127.0.0.1:5672")
    p.add_argument("--management", default="http://guest:guest@127.0.0.1:15672")
    p.add_argument("--vhost", default="drive_bench_demand")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    logs = ROOT / "bench" / "results" / f"demand-{datetime.now():%Y%m%d-%H%M%S}"
    logs.mkdir(parents=True, exist_ok=True)
    amqp = f"amqp://guest:guest@{args.broker}/{quote(args.vhost, safe='')}"
    url = recreate_database(args.postgres, DATABASE)
    recreate_vhost(args.management, args.vhost, "guest")
    env = {**os.environ, "AMQP_URI": amqp.replace("amqp://", "pyamqp://", 1), "BIBLIOBUS_DB_URL": url,
           "LOG_LEVEL": "WARNING", "DEMAND_EVALUATION_SECONDS": "3600"}
    started: list = []
    try:
        stops = prepare(url, env["AMQP_URI"], args.stops)
        started = start_services(env, args.procs, logs)
        log(f"{args.stops} stops, {args.procs} bibliobus process(es) healthy; publishing {args.signals} signals")
        figures = ingest(url, amqp, args.signals, stops, args.patrons, args.concurrency, args.timeout)
        log(f"ingested: {figures}")
        figures |= evaluate_once(url)
        figures |= what_if(started[0][1])
        log("now the raw pika baseline")
        baseline = measure_baseline(amqp, n=args.signals, concurrency=args.concurrency)
        figures |= {"baseline_per_s": baseline.per_s, "baseline_s": baseline.seconds,
                    "ingest_vs_baseline": round(figures["ingest_per_s"] / baseline.per_s, 2)}
    finally:
        stop_services(started)
        delete_vhost(args.management, args.vhost)
    report(figures, args)
    (logs / "figures.json").write_text(json.dumps(figures, indent=2))
    return 0 if figures["recorded"] == args.signals else 1


def report(figures: dict, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(figures))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bibliobus demand: {args.signals:,} signals over {args.stops} stops, {args.procs} process(es)")
    for column in ("figure", "measured", "target"):
        table.add_column(column)
    table.add_row("ingest (signals/s, through the broker)", f"{figures['ingest_per_s']:,}",
                  f"≥ {TARGETS['ingest_per_s']:,}")
    table.add_row("raw pika, same count (msg/s)", f"{figures['baseline_per_s']:,}", "")
    table.add_row("signals recorded", f"{figures['recorded']:,} of {figures['signals']:,}", "all")
    table.add_row("evaluate every stop once (s)", str(figures["evaluation_s"]), f"< {TARGETS['evaluation_s']}")
    table.add_row("90-day what-if, over HTTP (s)", str(figures["what_if_90d_s"]), f"< {TARGETS['what_if_90d_s']}")
    Console().print(table)


if __name__ == "__main__":
    sys.exit(main())
