"""`make bench-notifications`: a burst of `reservation_ready` events through the notifications service to the file sink.

Steps: drop and recreate the database `drive_bench_notifications`, recreate the vhost `drive_bench_notify`
(management API), migrate notifications alone and declare its queues (not `drive setup`: that migrates every
service), insert the patrons' contact records straight into `contacts`, start one notifications process (`--procs`
for replicas) with `nameko run` (port 18003, LOG_LEVEL=WARNING, no SMTP_HOST, no SMS_GATEWAY_URL: both channels to the
file sink of a temporary folder), wait for `/health`, send a short warm-up that is not counted, then the burst:
N events (default 5,000, a distinct patron each) published as fast as P publisher connections with publisher
confirms go (default 10). Waits until every delivery of the burst is `sent` (polling the deliveries table), reads
the file sink, runs the raw pika baseline of bench/pipeline.py with the same number of publishers, stops the
service (SIGTERM, always) and deletes the vhost.

    throughput_per_s   messages sent ÷ (last deliveries.sent_at − first publish)
    p50/p95/p99_ms     per message: deliveries.sent_at − the event's occurred_at (stamped just before its publish)
    sink_lines         lines of the burst in the file sink (email.jsonl + sms.jsonl)
    duplicates         sink lines whose delivery id was already seen (must be 0)
    errors             publishes not confirmed + messages of the burst not `sent` at the end (failed, still pending,
                       never recorded) + sink lines that do not match a sent delivery of the burst
    baseline_per_s     raw pika, same broker and vhost, same run (pipeline.measure_baseline)
    ratio              throughput_per_s ÷ baseline_per_s

By default 1 patron in 5 prefers SMS (with consent and a French mobile), the others e-mail; languages alternate
French / English; 1 event in 10 is for a bibliobus stop (with its visit). SMS quiet hours are made empty for the
run (SMS_QUIET_START = SMS_QUIET_END = 00:00), so no SMS is held. `--sms-share 0` keeps everyone on e-mail.

    .venv/bin/python bench/notifications.py [--json] [-n 5000] [--publishers 10] [--procs 1] [--sms-share 0.2]
        [--py-spy SECONDS] [--launcher SCRIPT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # imported with the services' modules
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline  # noqa: E402
import run_bench  # noqa: E402
from run_bench import ROOT, CpuMeter, Services, delete_vhost, log, queue_depths, recreate_vhost  # noqa: E402

KEYS = ("messages", "throughput_per_s", "p50_ms", "p95_ms", "p99_ms", "sink_lines", "duplicates", "errors",
        "baseline_per_s", "ratio")
DATABASE = "drive_bench_notifications"
EXCHANGE, ROUTING_KEY = "reservations.events", "reservation_ready"
PORT = 18003
# run_bench's process manager starts a service by its `module:Class`; notifications is not one of its own two.
run_bench.SERVICE_CLASSES.setdefault("notifications", run_bench.ALL_SERVICE_CLASSES["notifications"])

POINTS = [{"id": "central-adult", "name": "Médiathèque centrale — espace adultes", "kind": "counter",
           "site": "central"},
          {"id": "neighbourhood", "name": "Médiathèque de quartier", "kind": "library", "site": "neighbourhood"}]
STOP = {"id": "bus-stop-eglise", "name": "Arrêt bibliobus Place de l'Église", "kind": "bibliobus_stop",
        "site": "bibliobus"}
TITLES = ["La nuit du nord", "Le phare de minuit", "Histoire de la Loire", "Cuisine des quatre saisons",
          "Les étoiles filantes", "Petit traité de jardinage", "Le chat qui lisait", "Mémoires d'un bibliobus"]


# --- set-up ----------------------------------------------------------------------------------------------------


class Meter(CpuMeter):
    """run_bench's CPU meter, with PostgreSQL's autovacuum workers left to "other processes": they come and go
    during a burst, and one that ends inside the window would take its CPU out of the bench databases' sum."""

    @staticmethod
    def _cmdline(pid: str) -> str:
        line = CpuMeter._cmdline(pid)
        return "" if "autovacuum" in line else line


def prepare(url: str, amqp: str) -> list[str]:
    """Migrate notifications alone and declare its queues (the handler queues must exist before the burst)."""
    from services.common.messaging import declare_topology
    from services.common.migrate import upgrade
    from services.notifications.service import NotificationsService

    upgrade("notifications", url)
    return declare_topology([NotificationsService], {"AMQP_URI": amqp.replace("amqp://", "pyamqp://", 1)})


def card(prefix: str, i: int) -> str:
    return f"{prefix}-{i:05d}"


def insert_contacts(url: str, prefix: str, n: int, sms_share: float) -> dict[str, int]:
    """One contact record per patron, in bulk; every `round(1/sms_share)`-th prefers SMS (with consent)."""
    from sqlalchemy import insert

    from services.common.database import make_engine
    from services.notifications.models import ContactRecord

    every = round(1 / sms_share) if sms_share > 0 else 0
    now, rows, sms = datetime.now(UTC), [], 0
    for i in range(n):
        by_sms = bool(every) and i % every == every - 1
        sms += by_sms
        rows.append({"card": card(prefix, i), "email": f"patron.{prefix.lower()}{i}@example.org",
                     "phone": f"+336{i:08d}" if by_sms else None, "preferred_channel": "sms" if by_sms else "email",
                     "language": "en" if i % 2 else "fr", "sms_consent": by_sms, "updated_at": now})
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        for start in range(0, n, 1000):
            conn.execute(insert(ContactRecord), rows[start:start + 1000])
    engine.dispose()
    return {"email": n - sms, "sms": sms}


def build_events(prefix: str, n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Validated `reservation_ready` envelopes (schema version of the catalogue), `occurred_at` set at publish."""
    import services.events  # noqa: F401  (fills the registry)
    from services.common.envelope import REGISTRY

    rng = random.Random(seed)
    deadline = (datetime.now(UTC) + timedelta(days=3)).replace(hour=16, minute=0, second=0, microsecond=0)
    messages = []
    for i in range(n):
        lines = [{"line_id": str(uuid.uuid4()), "title_id": f"bench-title-{k}", "title": TITLES[k]}
                 for k in rng.sample(range(len(TITLES)), rng.randint(1, 3))]
        data: dict[str, Any] = {"reservation_id": str(uuid.uuid4()), "patron": card(prefix, i),
                                "pickup_point": POINTS[i % len(POINTS)], "pickup_deadline": deadline, "lines": lines}
        if i % 10 == 9:
            arrives = deadline - timedelta(days=1, hours=6)
            data["pickup_point"] = STOP
            data["visit"] = {"stop_id": STOP["id"], "arrives_at": arrives, "departs_at": arrives + timedelta(hours=2)}
        messages.append(REGISTRY.build("reservations", ROUTING_KEY, data).to_message())
    return messages


# --- the burst -------------------------------------------------------------------------------------------------


@dataclass
class Burst:
    messages: int
    published: int = 0
    failures: list[str] = field(default_factory=list)
    first_publish: float = 0.0  # wall clock (time.time()), to compare with the database's timestamps
    last_confirm: float = 0.0
    event_ids: set[str] = field(default_factory=set)

    @property
    def publish_per_s(self) -> float:
        span = self.last_confirm - self.first_publish
        return round(self.published / span, 1) if span > 0 else 0.0


def publish_burst(amqp: str, messages: list[dict[str, Any]], publishers: int) -> Burst:
    """P connections with publisher confirms, each publishing its share back to back; `occurred_at` is stamped
    just before each publish, so the latency counts the broker hop too."""
    params = pika.URLParameters(amqp)
    burst = Burst(messages=len(messages), event_ids={m["id"] for m in messages})
    channels = []
    for _ in range(min(publishers, len(messages))):
        connection = pika.BlockingConnection(params)
        channel = connection.channel()
        channel.confirm_delivery()
        channels.append((connection, channel))
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json", content_encoding="utf-8")
    go = threading.Barrier(len(channels) + 1)
    lock = threading.Lock()
    starts: list[float] = []

    def publish(k: int, channel: Any) -> None:
        share = messages[k::len(channels)]
        go.wait()
        starts.append(time.time())
        done = 0
        for message in share:
            message["occurred_at"] = datetime.now(UTC).isoformat()
            try:
                channel.basic_publish(EXCHANGE, ROUTING_KEY, json.dumps(message).encode(), properties, mandatory=True)
                done += 1
            except Exception as exc:  # noqa: BLE001 — nack, unroutable, closed: counted, never fatal
                with lock:
                    burst.failures.append(f"{exc.__class__.__name__}: {exc}"[:200])
        with lock:
            burst.published += done
            burst.last_confirm = max(burst.last_confirm, time.time())

    threads = [threading.Thread(target=publish, args=(k, ch), daemon=True) for k, (_, ch) in enumerate(channels)]
    for thread in threads:
        thread.start()
    go.wait()
    for thread in threads:
        thread.join()
    for connection, _ in channels:
        connection.close()
    burst.first_publish = min(starts)
    return burst


def delivery_states(engine: Any) -> dict[str, int]:
    """Deliveries by status, the whole table (cheap to poll: the table holds only this run's warm-up and burst)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM deliveries GROUP BY status")).all())


def wait_until_sent(engine: Any, expected: int, timeout: float, poll: float = 0.25) -> dict[str, int]:
    """Poll until `expected` deliveries exist and none is pending or being sent; returns them by status.
    Gives up when nothing moved for `timeout` seconds (a stuck service), not `timeout` after the start."""
    last_change, last_seen = time.monotonic(), None
    while True:
        states = delivery_states(engine)
        if sum(states.values()) >= expected and not states.get("pending") and not states.get("sending"):
            return states
        if states != last_seen:
            last_seen, last_change = states, time.monotonic()
        elif time.monotonic() - last_change > timeout:
            log(f"nothing moved for {timeout:.0f} s: giving up with {states}")
            return states
        time.sleep(poll)


@dataclass
class Outcome:
    sent: int
    states: dict[str, int]
    latency: dict[str, float]
    throughput_per_s: float
    recorded_per_s: float
    span_s: float
    channels: dict[str, int]
    record_latency: dict[str, float]


def outcome(engine: Any, burst: Burst) -> Outcome:
    """Figures from the deliveries table itself: sent_at − announced_at (the event's occurred_at) per message."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT status, channel, announced_at, created_at, sent_at FROM deliveries WHERE event_id = ANY(:ids)"),
            {"ids": list(burst.event_ids)}).all()
    latency, record_latency = pipeline.new_histogram(), pipeline.new_histogram()
    states: dict[str, int] = {}
    channels: dict[str, int] = {}
    last_sent = last_created = 0.0
    for status, channel, announced, created, sent_at in rows:
        states[status] = states.get(status, 0) + 1
        record_latency.record_value(max(1, int((created - announced).total_seconds() * 1e6)))
        last_created = max(last_created, created.timestamp())
        if status == "sent" and sent_at is not None:
            channels[channel] = channels.get(channel, 0) + 1
            latency.record_value(max(1, int((sent_at - announced).total_seconds() * 1e6)))
            last_sent = max(last_sent, sent_at.timestamp())
    sent = states.get("sent", 0)
    span = last_sent - burst.first_publish if sent else 0.0
    record_span = last_created - burst.first_publish if rows else 0.0
    return Outcome(sent=sent, states=states, latency=pipeline.percentiles_ms(latency),
                   throughput_per_s=round(sent / span, 1) if span > 0 else 0.0,
                   recorded_per_s=round(len(rows) / record_span, 1) if record_span > 0 else 0.0,
                   span_s=round(span, 2), channels=channels, record_latency=pipeline.percentiles_ms(record_latency))


def read_sink(sink: Path, sent_ids: set[str]) -> dict[str, int]:
    lines, seen, duplicates, strangers = 0, set(), 0, 0
    for name in ("email.jsonl", "sms.jsonl"):
        path = sink / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                lines += 1
                delivery_id = json.loads(line)["id"]
                if delivery_id in seen:
                    duplicates += 1
                seen.add(delivery_id)
                strangers += delivery_id not in sent_ids
    return {"lines": lines, "duplicates": duplicates, "unknown": strangers}


def sent_delivery_ids(engine: Any, event_ids: set[str]) -> set[str]:
    from sqlalchemy import text

    with engine.connect() as conn:
        return set(conn.scalars(text("SELECT id FROM deliveries WHERE status = 'sent' AND event_id = ANY(:ids)"),
                                {"ids": list(event_ids)}))


def rotate_sink(sink: Path, suffix: str) -> None:
    """The file sink opens its file per message: a renamed file leaves the next burst a fresh one."""
    for name in ("email.jsonl", "sms.jsonl"):
        if (sink / name).exists():
            (sink / name).rename(sink / f"{name}.{suffix}")


def rss_mb(pid: int) -> float | None:
    """The process's resident set (VmRSS, /proc), in MB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# --- what is printed -------------------------------------------------------------------------------------------


def report(figures: dict, result: Outcome, burst: Burst, baseline: pipeline.BaselineResult, sink: dict[str, int],
           extra: dict[str, str], as_json: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Drive notifications: a burst of {burst.messages} reservation_ready → file sink")
    table.add_column("figure")
    table.add_column("notifications (event → delivery sent)", justify="right")
    table.add_column(f"raw pika ({baseline.queue_type} queue)", justify="right")
    table.add_row("throughput /s", f"{result.throughput_per_s:.1f}", f"{baseline.per_s:.1f}")
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        table.add_row(f"latency {key[:3]} ms", f"{result.latency[key]:.1f}", f"{baseline.latency[key]:.1f}")
    table.add_row("measured over s", f"{result.span_s:.2f}", f"{baseline.seconds:.2f}")
    table.add_row("ratio notifications / raw", f"{figures['ratio']:.3f}", "")
    table.add_row("published (confirmed) /s", f"{burst.publish_per_s:.1f}", f"{baseline.messages} msgs")
    table.add_row("recorded (delivery rows) /s", f"{result.recorded_per_s:.1f}", "")
    table.add_row("event → delivery recorded p50 / p99 ms",
                  f"{result.record_latency['p50_ms']:.1f} / {result.record_latency['p99_ms']:.1f}", "")
    table.add_row("deliveries by status", ", ".join(f"{k} {v}" for k, v in sorted(result.states.items())), "")
    table.add_row("sent by channel", ", ".join(f"{k} {v}" for k, v in sorted(result.channels.items())), "")
    table.add_row("sink lines / duplicates / not a sent delivery",
                  f"{sink['lines']} / {sink['duplicates']} / {sink['unknown']}", "")
    table.add_row("errors (publish failed + not sent + stray lines)", str(figures["errors"]), "")
    for key, value in extra.items():
        table.add_row(key, value, "")
    console = Console(stderr=False, width=None if sys.stdout.isatty() else 120)
    console.print(table)
    for sample in burst.failures[:5]:
        console.print(f"[red]publish failed:[/] {sample}", markup=True, highlight=False)
    if as_json:
        sys.stdout.flush()
        print(json.dumps({k: figures[k] for k in KEYS}), flush=True)


# --- the run ---------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--messages", type=int, default=5000, help="reservation_ready events in the burst (5000)")
    p.add_argument("--publishers", type=int, default=10,
                   help="publisher connections with confirms, for the burst and the baseline (default 10)")
    p.add_argument("--procs", type=int, default=1, help="notifications processes (default 1)")
    p.add_argument("--warmup", type=int, default=100, help="events sent first, not counted (default 100)")
    p.add_argument("--sms-share", type=float, default=0.2, help="share of patrons who prefer SMS (default 0.2)")
    p.add_argument("--timeout", type=float, default=60,
                   help="give up when no delivery changed state for this many seconds (default 60)")
    p.add_argument("--baseline-queue-type", choices=("quorum", "classic"), default="quorum")
    p.add_argument("--py-spy", type=int, default=0, metavar="SECONDS",
                   help="profile the service with py-spy (raw, --nonblocking) for SECONDS from the start of the burst")
    run_bench.add_infra_arguments(p, "drive_bench_notify", json_flag=True)
    return p


def main() -> int:
    args = parser().parse_args()
    started = time.monotonic()
    run = run_bench.start_run("-notifications")
    if run is None:
        return 3
    results, lock = run

    from sqlalchemy import create_engine

    amqp = f"amqp://guest:guest@{args.broker}/{quote(args.vhost, safe='')}"
    url = run_bench.recreate_database(args.postgres, DATABASE)
    recreate_vhost(args.management, args.vhost, "guest")
    sink = Path(tempfile.mkdtemp(prefix="drive-bench-sink-"))
    env = {**os.environ, "AMQP_URI": amqp.replace("amqp://", "pyamqp://", 1), "LOG_LEVEL": "WARNING",
           "NOTIFICATIONS_DB_URL": url, "NOTIFY_FILE_SINK_DIR": str(sink),
           "SMS_QUIET_START": "00:00", "SMS_QUIET_END": "00:00"}  # an empty quiet period: no SMS is held
    for key in ("SMTP_HOST", "SMS_GATEWAY_URL", "NOTIFY_TEMPLATES_DIR"):
        env.pop(key, None)
    services = Services(env, results, args.launcher)
    engine = create_engine(url)
    cpu = None
    try:
        queues = prepare(url, amqp)
        contacts = insert_contacts(url, "BN", args.messages, args.sms_share)
        if args.warmup:
            insert_contacts(url, "BW", args.warmup, args.sms_share)
        warm, messages = build_events("BW", args.warmup), build_events("BN", args.messages)
        log(f"database {DATABASE} and vhost {args.vhost!r} recreated; {len(queues)} handler queues declared; "
            f"{contacts['email']} e-mail and {contacts['sms']} SMS contacts; {len(messages)} events built")
        for k in range(args.procs):  # replicas on 18003, 18013, …: they share the work (SKIP LOCKED, one queue)
            services.start("notifications", k, PORT + 10 * k)
        services.wait_healthy()
        pid = services.procs[0][2].pid  # the one py-spy watches
        log(f"{args.procs} notifications process(es) healthy after {time.monotonic() - started:.1f} s "
            f"(pid {', '.join(str(proc.pid) for _, _, proc, _ in services.procs)}); sink {sink}; "
            f"logs in {results.relative_to(ROOT)}")
        if warm:
            warm_burst = publish_burst(amqp, warm, args.publishers)
            states = wait_until_sent(engine, len(warm), args.timeout)
            rotate_sink(sink, "warmup")
            log(f"warm-up: {warm_burst.published} of {len(warm)} events published, deliveries {states} "
                "(not counted)")
        cpu = Meter(services)
        spy = run_bench.profile(pid, args.py_spy, results / "notifications.pyspy.txt") if args.py_spy else None
        cpu("start")
        burst = publish_burst(amqp, messages, args.publishers)
        log(f"burst: {burst.published} of {burst.messages} published and confirmed at {burst.publish_per_s:.0f}/s; "
            "waiting for the deliveries")
        wait_until_sent(engine, len(warm) + len(messages), args.timeout)
        cpu("end")
        rss = {name: rss_mb(proc.pid) for name, _, proc, _ in services.procs}  # after the run, before the stop
        result = outcome(engine, burst)
        sink_figures = read_sink(sink, sent_delivery_ids(engine, burst.event_ids))
        log(f"notifications: {result.sent} sent in {result.span_s} s; now the raw pika baseline")
        baseline = pipeline.measure_baseline(amqp, args.messages, args.publishers, args.baseline_queue_type)
        depths = {q: d for q, d in queue_depths(args.management, args.vhost).items() if d}
        run_bench.finish_profile(spy, args.py_spy)
    finally:
        services.stop()
        engine.dispose()
        shutil.rmtree(sink, ignore_errors=True)
        if not args.keep_vhost:
            delete_vhost(args.management, args.vhost)
    problems = run_bench.service_problems(services, cpu, log)

    errors = len(burst.failures) + (args.messages - result.sent) + sink_figures["unknown"]
    figures = {"messages": args.messages, "throughput_per_s": result.throughput_per_s, **result.latency,
               "sink_lines": sink_figures["lines"], "duplicates": sink_figures["duplicates"], "errors": errors,
               "baseline_per_s": baseline.per_s,
               "ratio": round(result.throughput_per_s / baseline.per_s, 3) if baseline.per_s else 0.0}
    cpu_rows = {k: v.replace("ms/resv", "ms/msg") for k, v in cpu.report(args.messages).items()}
    extra = {"processes": f"{args.procs} notifications (file sink), "
                          f"{contacts['email']} e-mail / {contacts['sms']} SMS patrons, SMS quiet hours off",
             "publishers (burst and baseline)": str(args.publishers),
             "queues non-empty at the end (management API, ~5 s stale)":
                 ", ".join(f"{q}={d}" for q, d in depths.items()) or "none",
             "service warnings/errors while measured": str(sum(len(v) for v in problems.values())),
             **cpu_rows,
             **{f"RSS {name} MB (after the run)": f"{mb:.1f}" if mb is not None else "gone"
                for name, mb in rss.items()},
             "whole run s": f"{time.monotonic() - started:.0f}"}
    if args.py_spy:
        flame = results / "notifications.pyspy.txt"
        extra["py-spy profile (first process)"] = str(flame.relative_to(ROOT)) if flame.exists() else "none written"
    (results / "figures.json").write_text(json.dumps({**figures, "extra": extra}, indent=2))
    report(figures, result, burst, baseline, sink_figures, extra, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
