"""The reservation pipeline under load, against running services, with a raw pika baseline on the same broker.

What is measured
    N reservations (default 2,000, one title each, a distinct patron card each) are placed over HTTP as staff by
    C concurrent clients (default 50; closed loop: each client sends its next POST when the previous one answers).
    An outside consumer — an exclusive queue bound to the `inventory.events` exchange with the routing keys
    `items_allocated` and `items_unavailable`, as a staff app would bind one — stamps when each reservation's
    event arrives.

    throughput_per_s  reservations allocated ÷ (last `items_allocated` seen − first POST sent)
    p50/p95/p99_ms    per reservation: `items_allocated` seen − just before its POST was sent (HdrHistogram)
    errors            POSTs that did not answer 201 (other status, timeout, connection error)
    lost              placed (201) but neither `items_allocated` nor `items_unavailable` seen within
                      --loss-timeout seconds after the last placement
    baseline_per_s    raw pika on the same broker and vhost: C publisher threads with publisher confirms send N
                      persistent messages in all to one queue of the kind the services' handlers use (quorum),
                      one consumer acks each; messages ÷ (last consumed − first published)
    ratio             throughput_per_s ÷ baseline_per_s

Before measuring, the bench catalogues its own titles (one CSV import, enough copies for every reservation plus a
margin, so every reservation can be allocated), waits until the reservations service has learnt them all from
`title_catalogued`, and places a short warm-up that is not counted.

Run alone against services that already run (their pickup points loaded, e.g. by `drive up`):

    .venv/bin/python bench/pipeline.py --reservations-url http://127.0.0.1:8001 \
        --inventory-url http://127.0.0.1:8002 --amqp-uri amqp://guest:guest@127.0.0.1:5672/%2F

`bench/run_bench.py` (`make bench`) starts the services on fresh PostgreSQL databases and a dedicated vhost first.
With `--json` the last line printed is one JSON object with the keys of `KEYS`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pika
import requests
from hdrh.histogram import HdrHistogram

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.common.auth import issue_token  # noqa: E402

KEYS = ("reservations", "rate_per_s", "throughput_per_s", "p50_ms", "p95_ms", "p99_ms", "errors", "lost",
        "baseline_per_s", "ratio")
PICKUP_POINTS = ("central-adult", "central-youth", "neighbourhood")
EVENTS_EXCHANGE = "inventory.events"
WATCHED = ("items_allocated", "items_unavailable")


def now() -> float:
    return time.perf_counter()


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 10 * 60 * 1_000_000, 3)  # microseconds, 1 µs .. 10 min, 3 significant digits


def percentiles_ms(histogram: HdrHistogram) -> dict[str, float]:
    if histogram.get_total_count() == 0:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    return {f"p{p}_ms": round(histogram.get_value_at_percentile(p) / 1000, 1) for p in (50, 95, 99)}


# --- talking to the services ---------------------------------------------------------------------------------


class Http:
    """One requests.Session per thread, a staff token, round robin over the replicas of a service."""

    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.local = threading.local()

    @property
    def session(self) -> requests.Session:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
            session.headers.update(self.headers)
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=4)
            session.mount("http://", adapter)
        return session

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """`headers=` adds to (or overrides, e.g. another token) the session's headers for this request only."""
        return self.session.request(method, url, timeout=kwargs.pop("timeout", 30), **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)


def catalogue_csv(tag: str, titles: range, copies_per_title: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["isbn", "title", "author", "material", "barcode", "site", "shelf_mark"])
    for t in titles:
        for c in range(copies_per_title):
            site = "central" if c % 3 else "neighbourhood"  # as many copies at home as pickups (2 of 3 central)
            writer.writerow(["", f"Bench{tag} title {t:04d}", f"Bench{tag} author", "book",
                             f"BENCH-{tag}-{t:04d}-{c:04d}", site, f"R BEN {t}"])
    return out.getvalue()


def prepare_catalogue(http: Http, inventory_urls: Sequence[str], reservations_urls: Sequence[str], tag: str,
                      titles: int, copies_per_title: int, timeout: float = 90) -> list[str]:
    """Catalogue `titles` titles of `copies_per_title` copies; return their ids once reservations knows them.
    The CSV goes in a few parts of whole titles, imported concurrently (an import is one transaction)."""
    parts = min(titles, 2 * len(inventory_urls))
    bounds = [round(k * titles / parts) for k in range(parts + 1)]

    def import_part(k: int) -> None:
        body = catalogue_csv(tag, range(bounds[k], bounds[k + 1]), copies_per_title)
        answer = http.post(f"{inventory_urls[k % len(inventory_urls)]}/catalogue/import", data=body.encode(),
                           timeout=300, headers={"Content-Type": "text/csv"})
        if answer.status_code != 201:
            raise RuntimeError(f"catalogue import answered {answer.status_code}: {answer.text[:500]}")

    with ThreadPoolExecutor(parts) as pool:
        list(pool.map(import_part, range(parts)))
    ids: list[str] = []
    while len(ids) < titles:
        page = http.get(f"{inventory_urls[0]}/titles", params={"q": f"bench{tag}", "limit": 100, "offset": len(ids)})
        page.raise_for_status()
        found = [t["id"] for t in page.json()["titles"]]
        if not found:
            break
        ids.extend(found)
    if len(ids) != titles:
        raise RuntimeError(f"catalogued {titles} titles but the search finds {len(ids)}")
    wait_until_known(http, reservations_urls[0], ids, tag, timeout)
    return ids


def wait_until_known(http: Http, reservations_url: str, title_ids: Sequence[str], tag: str, timeout: float) -> None:
    """Reservations learns titles from `title_catalogued`. Probe without side effects: a reservation of 11-50 titles
    is refused for its unknown titles first and, once all are known, for the quota (10 documents per card)."""
    deadline = time.monotonic() + timeout
    pending = list(title_ids)
    while pending:
        chunk = pending[:50]
        answer = http.post(f"{reservations_url}/reservations",
                           json={"patron": f"probe-{tag}", "pickup_point": PICKUP_POINTS[0], "titles": chunk})
        if answer.status_code == 201:  # a chunk within the quota was accepted: give the copies back
            http.post(f"{reservations_url}/reservations/{answer.json()['id']}/cancel")
            pending = pending[50:]
            continue
        unknown = ((answer.json() or {}).get("details") or {}).get("unknown") if answer.status_code == 400 else None
        if answer.status_code == 400 and not unknown:  # refused for the quota: every title of the chunk is known
            pending = pending[50:]
            continue
        if answer.status_code != 400:
            raise RuntimeError(f"probe reservation answered {answer.status_code}: {answer.text[:300]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"reservations still does not know {len(unknown)} title(s) after {timeout:.0f} s")
        time.sleep(0.2)


# --- the outside consumer --------------------------------------------------------------------------------------


class EventTap(threading.Thread):
    """Stamps the first `items_allocated` / `items_unavailable` of each reservation when it arrives."""

    def __init__(self, amqp_uri: str) -> None:
        super().__init__(name="event-tap", daemon=True)
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)
        self.queue = self.channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for key in WATCHED:
            self.channel.queue_bind(self.queue, EVENTS_EXCHANGE, routing_key=key)
        self.channel.basic_qos(prefetch_count=500)
        self.channel.basic_consume(self.queue, self._on_message)
        self.seen: dict[str, tuple[str, float]] = {}
        self.duplicates = 0
        self.unreadable = 0
        self.changed = threading.Condition()

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        seen_at = now()
        try:
            event = json.loads(body)
            reservation_id = event["data"]["reservation_id"]
        except (ValueError, KeyError, TypeError):
            self.unreadable += 1
        else:
            with self.changed:
                if reservation_id in self.seen:
                    self.duplicates += 1
                else:
                    self.seen[reservation_id] = (event["type"], seen_at)
                self.changed.notify_all()
        channel.basic_ack(method.delivery_tag)

    def run(self) -> None:
        try:
            self.channel.start_consuming()
        finally:
            self.connection.close()

    def wait_for(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not ids.issubset(self.seen.keys()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.changed.wait(min(left, 0.5))

    def stop(self) -> None:
        if self.is_alive():
            self.connection.add_callback_threadsafe(self.channel.stop_consuming)
            self.join(10)


# --- the pipeline run ------------------------------------------------------------------------------------------


@dataclass
class Placement:
    started: float
    status: int | None = None
    reservation_id: str | None = None
    answered: float = 0.0
    error: str | None = None


@dataclass
class PipelineResult:
    reservations: int
    placed: int
    errors: int
    lost: int
    allocated: int
    unavailable: int
    throughput_per_s: float
    placement_per_s: float
    latency: dict[str, float]
    http_latency: dict[str, float]
    seconds: float
    error_samples: list[str] = field(default_factory=list)
    lost_ids: list[str] = field(default_factory=list)
    duplicates: int = 0
    tag: str = ""


T = TypeVar("T")


def closed_loop(n: int, concurrency: int, one: Callable[[int, int], T]) -> list[T]:
    """C clients, each sending its next request when the previous one has answered: `one(client, index)` for every
    index below n, results in index order. `one` records its own failures: none may stop the run."""
    return client_loop(n, concurrency, one)


def paced_loop(n: int, rate: float, concurrency: int, one: Callable[[int, int], T]) -> list[T]:
    """An open loop: request i is sent at start + i / rate, whatever the answers to the earlier ones, by up to
    `concurrency` threads (a request still waiting for its answer does not hold back the next one, unless every
    thread waits). What a day of steady traffic looks like, where `closed_loop` measures a saturated service."""
    return client_loop(n, concurrency, one, rate)


def client_loop(n: int, concurrency: int, one: Callable[[int, int], T], rate: float | None = None) -> list[T]:
    results: list[T | None] = [None] * n
    counter = iter(range(n))
    lock = threading.Lock()
    start = now() + 0.05

    def client(k: int) -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            if rate:
                time.sleep(max(0.0, start + i / rate - now()))
            results[i] = one(k, i)

    with ThreadPoolExecutor(concurrency, thread_name_prefix="client") as pool:
        for future in [pool.submit(client, k) for k in range(concurrency)]:
            future.result()
    return [r for r in results if r is not None]


def place_all(http: Http, reservations_urls: Sequence[str], title_ids: Sequence[str], n: int, concurrency: int,
              tag: str, label: str, rate: float | None = None) -> list[Placement]:
    def place(_: int, i: int) -> Placement:
        body = {"patron": f"b{tag}-{label}-{i}", "pickup_point": PICKUP_POINTS[i % len(PICKUP_POINTS)],
                "titles": [title_ids[i % len(title_ids)]]}
        url = f"{reservations_urls[i % len(reservations_urls)]}/reservations"
        placement = Placement(started=now())
        try:
            answer = http.post(url, json=body)
            placement.status = answer.status_code
            if answer.status_code == 201:
                placement.reservation_id = answer.json()["id"]
            else:
                placement.error = f"{answer.status_code} {answer.text[:200]}"
        except Exception as exc:  # noqa: BLE001 — every failure is counted, none stops the run
            placement.error = f"{exc.__class__.__name__}: {exc}"[:300]
        placement.answered = now()
        return placement

    return paced_loop(n, rate, concurrency, place) if rate else closed_loop(n, concurrency, place)


def measure_pipeline(reservations_urls: Sequence[str], inventory_urls: Sequence[str], amqp_uri: str, n: int = 2000,
                     concurrency: int = 50, titles: int = 50, warmup: int = 100, loss_timeout: float = 30,
                     token: str | None = None, log: Any = print, window: Any = None,
                     rate: float | None = None) -> PipelineResult:
    """`window(\"start\"|\"end\")` is called around the measured placements (run_bench meters CPU with it);
    `rate`: the measured placements are paced at that many per second (`paced_loop`), else a closed loop."""
    tag = uuid.uuid4().hex[:8]
    http = Http(token or issue_token({}, "staff", "bench"))
    copies = math.ceil((n + warmup) / titles) + 3
    started = now()
    title_ids = prepare_catalogue(http, inventory_urls, reservations_urls, tag, titles, copies)
    log(f"catalogued {titles} titles × {copies} copies in {now() - started:.1f} s; reservations knows them all")
    tap = EventTap(amqp_uri)
    tap.start()
    try:
        if warmup:
            placed = place_all(http, reservations_urls, title_ids, warmup, concurrency, tag, "w")
            tap.wait_for({p.reservation_id for p in placed if p.reservation_id}, loss_timeout)
            log(f"warm-up: {warmup} reservations (not counted)")
        if window:
            window("start")
        placements = place_all(http, reservations_urls, title_ids, n, concurrency, tag, "m", rate)
        placed_ids = {p.reservation_id for p in placements if p.reservation_id}
        tap.wait_for(placed_ids, loss_timeout)
        if window:
            window("end")
    finally:
        tap.stop()

    first = min(p.started for p in placements)
    last_answer = max(p.answered for p in placements)
    latency, http_latency = new_histogram(), new_histogram()
    allocated_at, unavailable = [], 0
    for p in placements:
        if p.reservation_id:
            http_latency.record_value(max(1, int((p.answered - p.started) * 1e6)))
        seen = tap.seen.get(p.reservation_id) if p.reservation_id else None
        if seen is None:
            continue
        kind, seen_at = seen
        if kind == "items_allocated":
            allocated_at.append(seen_at)
            latency.record_value(max(1, int((seen_at - p.started) * 1e6)))
        else:
            unavailable += 1
    errors = [p.error for p in placements if p.error]
    lost = sorted(i for i in placed_ids if i not in tap.seen)
    span = (max(allocated_at) - first) if allocated_at else 0.0
    return PipelineResult(
        reservations=n, placed=len(placed_ids), errors=len(errors), lost=len(lost), allocated=len(allocated_at),
        unavailable=unavailable, throughput_per_s=round(len(allocated_at) / span, 1) if span else 0.0,
        placement_per_s=round(len(placed_ids) / (last_answer - first), 1), latency=percentiles_ms(latency),
        http_latency=percentiles_ms(http_latency), seconds=round(span, 2), error_samples=errors[:5],
        lost_ids=lost[:20], duplicates=tap.duplicates, tag=tag)


# --- the raw pika baseline -------------------------------------------------------------------------------------


@dataclass
class BaselineResult:
    messages: int
    per_s: float
    latency: dict[str, float]
    seconds: float
    queue_type: str


def measure_baseline(amqp_uri: str, n: int = 2000, concurrency: int = 50, queue_type: str = "quorum",
                     timeout: float = 120) -> BaselineResult:
    """C publishers with confirms (each waits for its confirm before the next publish), one consumer acking each
    message; persistent messages in a durable queue of `queue_type` on the same broker and vhost."""
    params = pika.URLParameters(amqp_uri)
    queue = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    admin = pika.BlockingConnection(params)
    admin.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": queue_type})
    shares = [n // concurrency + (1 if k < n % concurrency else 0) for k in range(concurrency)]
    publishers = []
    for share in shares:
        if share:
            connection = pika.BlockingConnection(params)
            channel = connection.channel()
            channel.confirm_delivery()
            publishers.append((connection, channel, share))
    histogram = new_histogram()
    consumed = {"count": 0, "last": 0.0}
    done = threading.Event()
    go = threading.Barrier(len(publishers) + 1)
    consumer_connection = pika.BlockingConnection(params)
    consumer_channel = consumer_connection.channel()
    consumer_channel.basic_qos(prefetch_count=200)

    def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        at = now()
        (sent,) = struct.unpack("!d", body[:8])
        histogram.record_value(max(1, int((at - sent) * 1e6)))
        channel.basic_ack(method.delivery_tag)
        consumed["count"] += 1
        consumed["last"] = at
        if consumed["count"] >= n:
            channel.stop_consuming()
            done.set()

    consumer_channel.basic_consume(queue, on_message)

    def consume() -> None:
        consumer_channel.start_consuming()

    padding = b"x" * 400  # about the size of an `items_allocated` envelope
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/octet-stream")
    starts: list[float] = []

    def publish(channel: Any, share: int) -> None:
        go.wait()
        starts.append(now())
        for _ in range(share):
            channel.basic_publish("", queue, struct.pack("!d", now()) + padding, properties, mandatory=True)

    consumer = threading.Thread(target=consume, name="baseline-consumer", daemon=True)
    consumer.start()
    threads = [threading.Thread(target=publish, args=(ch, share), daemon=True) for _, ch, share in publishers]
    for thread in threads:
        thread.start()
    go.wait()
    try:
        for thread in threads:
            thread.join(timeout)
        done.wait(timeout)
    finally:
        if not done.is_set():
            consumer_connection.add_callback_threadsafe(consumer_channel.stop_consuming)
        consumer.join(10)
        for connection, _, _ in publishers:
            connection.close()
        consumer_connection.close()
        admin.channel().queue_delete(queue)
        admin.close()
    span = consumed["last"] - min(starts)
    return BaselineResult(messages=consumed["count"], per_s=round(consumed["count"] / span, 1) if span else 0.0,
                          latency=percentiles_ms(histogram), seconds=round(span, 2), queue_type=queue_type)


# --- both, and what is printed ---------------------------------------------------------------------------------


def measure(reservations_urls: Sequence[str], inventory_urls: Sequence[str], amqp_uri: str, n: int = 2000,
            concurrency: int = 50, titles: int = 50, warmup: int = 100, loss_timeout: float = 30,
            baseline_queue_type: str = "quorum", log: Any = print, window: Any = None,
            rate: float | None = None) -> tuple[dict, PipelineResult, BaselineResult]:
    pipeline = measure_pipeline(reservations_urls, inventory_urls, amqp_uri, n, concurrency, titles, warmup,
                                loss_timeout, log=log, window=window, rate=rate)
    log(f"pipeline: {pipeline.allocated} allocated in {pipeline.seconds} s; now the raw pika baseline")
    baseline = measure_baseline(amqp_uri, n, concurrency, baseline_queue_type)
    figures = {
        "reservations": n,
        "rate_per_s": rate or 0,
        "throughput_per_s": pipeline.throughput_per_s,
        **pipeline.latency,
        "errors": pipeline.errors,
        "lost": pipeline.lost,
        "baseline_per_s": baseline.per_s,
        "ratio": round(pipeline.throughput_per_s / baseline.per_s, 3) if baseline.per_s else 0.0,
    }
    return figures, pipeline, baseline


def summary_table(figures: dict, pipeline: PipelineResult, baseline: BaselineResult, concurrency: int,
                  extra: dict[str, str] | None = None) -> Any:
    from rich.table import Table

    load = (f"paced at {figures['rate_per_s']:g}/s" if figures.get("rate_per_s")
            else f"at concurrency {concurrency}")
    table = Table(title=f"Drive pipeline: {figures['reservations']} reservations {load}")
    table.add_column("figure")
    table.add_column("pipeline (placed → items_allocated)", justify="right")
    table.add_column(f"raw pika ({baseline.queue_type} queue)", justify="right")
    table.add_row("throughput /s", f"{pipeline.throughput_per_s:.1f}", f"{baseline.per_s:.1f}")
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        table.add_row(f"latency {key[:3]} ms", f"{pipeline.latency[key]:.1f}", f"{baseline.latency[key]:.1f}")
    table.add_row("measured over s", f"{pipeline.seconds:.2f}", f"{baseline.seconds:.2f}")
    table.add_row("ratio pipeline / raw", f"{figures['ratio']:.3f}", "")
    table.add_row("placed (201) / allocated / unavailable",
                  f"{pipeline.placed} / {pipeline.allocated} / {pipeline.unavailable}", f"{baseline.messages} msgs")
    table.add_row("errors / lost", f"{pipeline.errors} / {pipeline.lost}", "")
    table.add_row("POST answered /s", f"{pipeline.placement_per_s:.1f}", "")
    table.add_row("POST → 201 p50 / p99 ms",
                  f"{pipeline.http_latency['p50_ms']:.1f} / {pipeline.http_latency['p99_ms']:.1f}", "")
    if pipeline.duplicates:
        table.add_row("duplicate events seen", str(pipeline.duplicates), "")
    for key, value in (extra or {}).items():
        table.add_row(key, value, "")
    return table


def report(figures: dict, pipeline: PipelineResult, baseline: BaselineResult, concurrency: int, as_json: bool,
           extra: dict[str, str] | None = None) -> None:
    from rich.console import Console

    console = Console(stderr=False, width=None if sys.stdout.isatty() else 120)
    console.print(summary_table(figures, pipeline, baseline, concurrency, extra))
    for sample in pipeline.error_samples:
        console.print(f"[red]error:[/] {sample}", markup=True, highlight=False)
    if pipeline.lost_ids:
        console.print(f"[red]lost (first {len(pipeline.lost_ids)}):[/] {', '.join(pipeline.lost_ids)}")
    if as_json:
        sys.stdout.flush()
        print(json.dumps({k: figures[k] for k in KEYS}), flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--reservations", type=int, default=2000, help="reservations measured (default 2000)")
    p.add_argument("-c", "--concurrency", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--rate", type=float, default=None, metavar="PER_S",
                   help="pace the measured POSTs at PER_S a second (an open loop, up to -c in flight) rather than "
                        "a closed loop of -c clients; e.g. --rate 50: the latency of a steady day")
    p.add_argument("--titles", type=int, default=50, help="titles catalogued for the run (default 50)")
    p.add_argument("--warmup", type=int, default=100, help="reservations placed first, not counted (default 100)")
    p.add_argument("--loss-timeout", type=float, default=30,
                   help="seconds after the last placement before a reservation counts as lost (default 30)")
    p.add_argument("--baseline-queue-type", choices=("quorum", "classic"), default="quorum")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    return p


def main() -> None:
    p = parser()
    p.add_argument("--reservations-url", action="append",
                   help="a reservations replica (repeat for several); default http://127.0.0.1:8001")
    p.add_argument("--inventory-url", action="append",
                   help="an inventory replica (repeat for several); default http://127.0.0.1:8002")
    p.add_argument("--amqp-uri", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    args = p.parse_args()
    urls = [u.rstrip("/") for u in (args.reservations_url or ["http://127.0.0.1:8001"])]
    inventory = [u.rstrip("/") for u in (args.inventory_url or ["http://127.0.0.1:8002"])]
    amqp = args.amqp_uri.replace("pyamqp://", "amqp://", 1)
    figures, pipeline, baseline = measure(urls, inventory, amqp, args.reservations, args.concurrency, args.titles,
                                          args.warmup, args.loss_timeout, args.baseline_queue_type, rate=args.rate)
    report(figures, pipeline, baseline, args.concurrency, args.json)


if __name__ == "__main__":
    main()
