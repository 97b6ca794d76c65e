"""The counter's board, measured in a real browser (Debian's Chromium through Playwright):

- `--arrivals N` (default 100): the delay from each `patron_arrived` published (seen by an outside consumer of the
  broker, as a staff app would bind one) to the patron shown among those waiting outside on an open board;
- `--soak-minutes M`: then the same board left open M minutes, one arrival every `--every` seconds, across a restart
  of the web service (a third of the way) and of the broker itself (two thirds): every arrival must show.

It runs reservations and web as `nameko run` processes on SQLite files of a temporary folder, against a broker node
of its own (RabbitMQ on 127.0.0.1:5673, node `drivebench`), which it may restart without touching the machine's
broker that the tests and `make up` use. Run as root (or as the rabbitmq user): `make bench-board`, or
`.venv/bin/python bench/board.py --soak-minutes 60 --json`.
"""

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.common.auth import issue_token  # noqa: E402

BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
POINT = "central-adult"
BROKER_PORT, BROKER_NODE = 5673, "drivebench@localhost"
RESERVATIONS_PORT, WEB_PORT = 18101, 18105
EVERY_DAY = {day: ["00:00-23:59"] for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                               "sunday")}
# Marks, in the page, when each card first shows among those waiting outside (the browser's clock: this machine's).
WATCH_OUTSIDE = """() => {
  window.shownAt = {};
  const mark = () => {
    const outside = document.getElementById('outside');
    for (const card of (outside ? outside.textContent.match(/Z\\d{4}/g) || [] : [])) {
      if (!(card in window.shownAt)) window.shownAt[card] = Date.now();
    }
  };
  new MutationObserver(mark).observe(document.getElementById('sheet'), {childList: true, subtree: true});
}"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if found := condition():
                return found
        except Exception:  # not up yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench/board: {what} did not happen within {timeout:.0f} s")


class Broker:
    """A RabbitMQ node of the bench's own: its own port, data and logs, restartable at will."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "rabbitmq"
        (self.folder / "mnesia").mkdir(parents=True)
        (self.folder / "log").mkdir()
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{BROKER_PORT}\n")
        if os.geteuid() == 0:
            shutil.chown(folder, "rabbitmq", "rabbitmq")
            for path in [self.folder, *self.folder.rglob("*")]:
                shutil.chown(path, "rabbitmq", "rabbitmq")
        self.env = {**os.environ, "RABBITMQ_NODENAME": BROKER_NODE, "RABBITMQ_DIST_PORT": "25673",
                    "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
                    "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"), "RABBITMQ_LOG_BASE": str(self.folder / "log"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
                    "RABBITMQ_PID_FILE": str(self.folder / "pid"),
                    "RABBITMQ_FEATURE_FLAGS_FILE": str(self.folder / "feature_flags")}
        self.uri = f"pyamqp://guest:guest@127.0.0.1:{BROKER_PORT}/"

    def ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", "-n", BROKER_NODE, *args], env=self.env, check=True, capture_output=True,
                       timeout=120)

    def start(self) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True, capture_output=True)
        wait_for(lambda: socket.create_connection(("127.0.0.1", BROKER_PORT), timeout=1), 90, "the bench's broker")
        self.ctl("await_startup")

    def restart(self) -> float:
        started = time.monotonic()
        self.ctl("stop_app")
        time.sleep(3)  # a broker away for a few seconds, as a node restart is
        self.ctl("start_app")
        return time.monotonic() - started

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", BROKER_NODE, "stop"], env=self.env, capture_output=True, timeout=60)


class Tap(threading.Thread):
    """An outside consumer of patron_arrived: when each was published (received here), by card."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.seen, self.ready = url, {}, threading.Event()

    def run(self) -> None:
        while True:
            try:
                connection = pika.BlockingConnection(pika.URLParameters(self.url))
                channel = connection.channel()
                queue = channel.queue_declare("", exclusive=True).method.queue
                channel.queue_bind(queue, "reservations.events", routing_key="patron_arrived")
                self.ready.set()
                for _, _, body in channel.consume(queue, auto_ack=True):
                    event = json.loads(body)
                    self.seen.setdefault(event["data"]["patron"], (time.time(), event["occurred_at"]))
            except Exception:  # the broker restarting: bind again (what was said meanwhile came through the outbox)
                time.sleep(0.5)


class Services:
    def __init__(self, folder: Path, broker: Broker) -> None:
        self.folder, self.procs = folder, {}
        self.env = {**os.environ, "DRIVE_ENV": "dev", "AMQP_URI": broker.uri, "LOG_LEVEL": "WARNING",
                    "RESERVATIONS_ADDRESS": f"127.0.0.1:{RESERVATIONS_PORT}", "WEB_ADDRESS": f"127.0.0.1:{WEB_PORT}",
                    "RESERVATIONS_URL": f"http://127.0.0.1:{RESERVATIONS_PORT}", "WEB_URL": f"http://127.0.0.1:{WEB_PORT}",
                    **{f"{s.upper()}_DB_URL": f"sqlite:///{folder}/{s}.db"
                       for s in ("reservations", "inventory", "notifications", "bibliobus")}}

    def setup(self) -> None:
        subprocess.run([str(BIN / "drive"), "setup"], env=self.env, check=True, capture_output=True, cwd=ROOT)
        from sqlalchemy.orm import Session

        from services.common.database import make_engine
        from services.demo import load_pickup_points

        engine = make_engine(self.env["RESERVATIONS_DB_URL"])
        with Session(engine) as session, session.begin():
            load_pickup_points(session)
        engine.dispose()

    def start(self, name: str, target: str, port: int) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115  (kept open for the process's life)
        self.procs[name] = subprocess.Popen(
            [str(BIN / "nameko"), "run", "--config", f"services/{name}/config.yaml", target],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).ok, 60, f"{name} ready")

    def start_reservations(self) -> None:
        self.start("reservations", "services.reservations.service:ReservationsService", RESERVATIONS_PORT)

    def start_web(self) -> None:
        self.start("web", "services.web.service:WebService", WEB_PORT)

    def stop(self, name: str) -> float:
        started = time.monotonic()
        process = self.procs.pop(name)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return time.monotonic() - started

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * p) - 1)]


class Board:
    """One open board in Chromium, signed in through `drive board-link`'s URL, watched for arrivals."""

    def __init__(self, playwright: Any, hours: float) -> None:
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                  args=["--no-sandbox", "--disable-gpu",
                                                        "--disable-background-networking"])
        self.page = self.browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
        self.navigations = 0
        self.page.on("framenavigated", lambda frame: setattr(self, "navigations", self.navigations + 1)
                     if frame == self.page.main_frame else None)
        token = issue_token({}, "staff", "bench-counter", hours=hours)
        self.page.goto(f"http://127.0.0.1:{WEB_PORT}/boards/{POINT}#{token}")
        self.page.wait_for_function("() => document.body.dataset.live === 'open' && !!document.body.dataset.refreshed",
                                    timeout=15000)
        self.page.evaluate(WATCH_OUTSIDE)
        self.opened_navigations = self.navigations

    def shown_at(self, card: str, timeout_s: float) -> float | None:
        try:
            self.page.wait_for_function("(card) => card in window.shownAt", arg=card, timeout=timeout_s * 1000)
        except Exception:
            return None
        return self.page.evaluate("(card) => window.shownAt[card]", card) / 1000

    def live(self) -> str:
        return self.page.evaluate("() => document.body.dataset.live")


def arrive(reservation_id: str, headers: dict[str, str]) -> None:
    answer = requests.post(f"http://127.0.0.1:{RESERVATIONS_PORT}/reservations/{reservation_id}/arrived",
                           headers=headers, timeout=10)
    answer.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrivals", type=int, default=100)
    parser.add_argument("--soak-minutes", type=float, default=0)
    parser.add_argument("--every", type=float, default=30, help="seconds between two arrivals of the soak")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.e2e.helpers import seed_ready

    folder = Path(tempfile.mkdtemp(prefix="drive-bench-board-"))
    broker = Broker(folder)
    services = Services(folder, broker)
    soak_arrivals = math.ceil(args.soak_minutes * 60 / args.every) if args.soak_minutes else 0
    figures: dict[str, Any] = {"arrivals": args.arrivals}
    try:
        say(f"bench/board: a broker of its own on {BROKER_PORT}, services on SQLite in {folder}")
        broker.start()
        services.setup()
        services.start_reservations()
        services.start_web()
        headers = {"Authorization": f"Bearer {issue_token({}, 'staff', 'bench-counter')}"}
        requests.put(f"http://127.0.0.1:{RESERVATIONS_PORT}/pickup-points/{POINT}/calendar", headers=headers,
                     json={"opening_hours": EVERY_DAY}, timeout=10).raise_for_status()
        rids = seed_ready(services.env["RESERVATIONS_DB_URL"], args.arrivals + soak_arrivals, POINT, patron="Z")
        tap = Tap(broker.uri.replace("pyamqp", "amqp"))
        tap.start()
        tap.ready.wait(30)
        with sync_playwright() as playwright:
            board = Board(playwright, hours=max(2, args.soak_minutes / 60 + 1))
            delays, lost = [], []
            for n, rid in enumerate(rids[:args.arrivals]):
                card = f"Z{n:04d}"
                arrive(rid, headers)
                shown = board.shown_at(card, 10)
                published = wait_for(lambda card=card: tap.seen.get(card), 10, f"{card}'s patron_arrived")[0]
                (delays.append(shown - published) if shown else lost.append(card))
                if (n + 1) % 20 == 0:
                    say(f"  {n + 1}/{args.arrivals} arrivals")
            figures.update({"p50_ms": round(percentile(delays, 0.5) * 1000), "p99_ms": round(percentile(delays, 0.99)
                            * 1000), "max_ms": round(max(delays) * 1000), "not_shown": len(lost)})
            say(f"patron_arrived published → shown on the open board, {args.arrivals} arrivals: p50 "
                f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms, "
                f"not shown within 10 s: {len(lost)}")
            if soak_arrivals:
                figures["soak"] = soak(board, broker, services, rids[args.arrivals:], headers, args, tap)
            figures["page_reloads"] = board.navigations - board.opened_navigations
    finally:
        services.stop_all()
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))


def soak(board: Board, broker: Broker, services: Services, rids: list[str], headers: dict[str, str],
         args: argparse.Namespace, tap: Tap) -> dict[str, Any]:
    """One arrival every `every` seconds on the same open board; the web service restarted after a third, the broker
    after two thirds. Each arrival must show; its delay is counted from its POST (the board can't be faster)."""
    started, phases = time.monotonic(), {"before": [], "after_web_restart": [], "after_broker_restart": []}
    phase, events, missing = "before", [], []
    for n, rid in enumerate(rids):
        due = started + n * args.every
        time.sleep(max(0.0, due - time.monotonic()))
        if phase == "before" and n >= len(rids) / 3:
            events.append(f"web restarted at {(time.monotonic() - started) / 60:.1f} min (stopped in "
                          f"{services.stop('web'):.1f} s)")
            services.start_web()
            phase = "after_web_restart"
        elif phase == "after_web_restart" and n >= 2 * len(rids) / 3:
            events.append(f"broker restarted at {(time.monotonic() - started) / 60:.1f} min (away "
                          f"{broker.restart():.1f} s)")
            phase = "after_broker_restart"
        card = f"Z{args.arrivals + n:04d}"
        posted = time.time()
        wait_for(lambda rid=rid: (arrive(rid, headers), True)[1], 60, f"{card}'s arrival accepted")
        shown = board.shown_at(card, 60)
        if shown is None:
            missing.append(card)
        else:
            phases[phase].append(shown - posted)
        say(f"  soak {(time.monotonic() - started) / 60:5.1f} min: {card} "
            f"{'NOT SHOWN' if shown is None else f'shown in {(shown - posted) * 1000:.0f} ms'} ({phase}, "
            f"board {board.live()})")
    for event in events:
        say(f"  {event}")
    summary = {"minutes": round((time.monotonic() - started) / 60, 1), "arrivals": len(rids), "not_shown": missing,
               "events": events, **{f"{name}_max_ms": round(max(values) * 1000) if values else None
                                    for name, values in phases.items()}}
    say(f"soak: {summary['arrivals']} arrivals over {summary['minutes']} min, not shown: {len(missing)}; max delay "
        f"from the POST: before {summary['before_max_ms']} ms, after the web restart "
        f"{summary['after_web_restart_max_ms']} ms, after the broker restart "
        f"{summary['after_broker_restart_max_ms']} ms")
    return summary


if __name__ == "__main__":
    main()
