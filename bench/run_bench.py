"""`make bench`: the services on fresh PostgreSQL databases and a dedicated RabbitMQ vhost, then `bench/pipeline.py`.

Steps: drop and recreate the databases `drive_bench_reservations` / `drive_bench_inventory`, recreate the vhost
`drive_bench` (management API), `drive setup` (migrations + broker queues), load the pickup points, start the
services with `nameko run` (replicas on their own ports: reservations 18001, 18011, ...; inventory 18002, 18012,
...), wait for `/health`, measure (pipeline, then the raw pika baseline), and stop the services with SIGTERM —
always, even when something failed. Service logs (LOG_LEVEL=WARNING) and the figures go to bench/results/<time>/.

    .venv/bin/python bench/run_bench.py [--json] [-n 2000] [-c 50] [--reservations-procs 1] [--inventory-procs 2]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pipeline  # noqa: E402

DATABASES = {"reservations": "drive_bench_reservations", "inventory": "drive_bench_inventory"}
# `module:Class`: the bare module also holds the imported base class DriveService, which nameko would try to run.
SERVICE_CLASSES = {"reservations": "services.reservations.service:ReservationsService",
                   "inventory": "services.inventory.service:InventoryService"}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def recreate_databases(pg: str) -> dict[str, str]:
    import psycopg2

    conn = psycopg2.connect(f"{pg}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in DATABASES.values():
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return {service: f"{pg.replace('postgresql://', 'postgresql+psycopg2://')}/{name}"
            for service, name in DATABASES.items()}


def recreate_vhost(management: str, vhost: str, user: str) -> None:
    url = f"{management}/api/vhosts/{quote(vhost, safe='')}"
    requests.delete(url, timeout=30)
    requests.put(url, timeout=30).raise_for_status()
    requests.put(f"{management}/api/permissions/{quote(vhost, safe='')}/{user}", timeout=30,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()


def delete_vhost(management: str, vhost: str) -> None:
    with suppress(requests.RequestException):
        requests.delete(f"{management}/api/vhosts/{quote(vhost, safe='')}", timeout=30)


def queue_depths(management: str, vhost: str) -> dict[str, int]:
    try:
        queues = requests.get(f"{management}/api/queues/{quote(vhost, safe='')}", timeout=10).json()
        return {q["name"]: q.get("messages", 0) for q in queues}
    except (requests.RequestException, ValueError):
        return {}


def load_pickup_points(url: str) -> int:
    from sqlalchemy.orm import Session

    from services.common.database import make_engine
    from services.demo import load_pickup_points as load

    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        count = load(session)
    engine.dispose()
    return count


class Services:
    """The nameko processes of the run; `stop()` sends SIGTERM to each and kills what does not stop."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[tuple[str, str, subprocess.Popen, Path]] = []

    def start(self, service: str, replica: int, port: int) -> str:
        env = dict(self.env, **{f"{service.upper()}_ADDRESS": f"127.0.0.1:{port}"})
        path = self.logs / f"{service}-{replica}.log"
        out = path.open("wb")
        proc = subprocess.Popen(
            [str(BIN / "python"), "-m", "nameko", "run", "--config", str(ROOT / "services" / service / "config.yaml"),
             SERVICE_CLASSES[service]], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        url = f"http://127.0.0.1:{port}"
        self.procs.append((f"{service}-{replica}", url, proc, path))
        return url

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name, url, proc, path in self.procs:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}):\n{tail(path)}")
                with suppress(requests.RequestException):
                    if requests.get(f"{url}/health", timeout=5).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not healthy after {timeout:.0f} s:\n{tail(path)}")
                time.sleep(0.2)

    def stop(self) -> None:
        for _, _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, _, proc, _ in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop on SIGTERM: killed")
                proc.kill()
                proc.wait()

    def problems(self) -> dict[str, list[str]]:
        """WARNING and worse logged by each process (the services log JSON lines)."""
        found = {}
        for name, _, _, path in self.procs:
            lines = [ln for ln in path.read_text(errors="replace").splitlines()
                     if any(level in ln for level in ('"WARNING"', '"ERROR"', '"CRITICAL"', "Traceback"))]
            if lines:
                found[name] = lines
        return found


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main() -> int:
    p = pipeline.parser()
    p.add_argument("--reservations-procs", type=int, default=int(os.environ.get("BENCH_RESERVATIONS_PROCS", 1)))
    p.add_argument("--inventory-procs", type=int, default=int(os.environ.get("BENCH_INVENTORY_PROCS", 2)))
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="server, without a database")
    p.add_argument("--broker", default="127.0.0.1:5672")
    p.add_argument("--management", default="http://guest:guest@127.0.0.1:15672")
    p.add_argument("--vhost", default="drive_bench")
    p.add_argument("--keep-vhost", action="store_true", help="leave the vhost (and its queues) after the run")
    p.add_argument("--serve", action="store_true",
                   help="set up and start the services, then wait (Ctrl-C stops them): run pipeline.py against them")
    args = p.parse_args()

    started = time.monotonic()
    results = ROOT / "bench" / "results" / datetime.now().strftime("%Y%m%d-%H%M%S")
    results.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks on SIGTERM too

    amqp = f"amqp://guest:guest@{args.broker}/{quote(args.vhost, safe='')}"
    urls = recreate_databases(args.postgres)
    recreate_vhost(args.management, args.vhost, "guest")
    env = {**os.environ, "AMQP_URI": amqp.replace("amqp://", "pyamqp://", 1), "LOG_LEVEL": "WARNING",
           "RESERVATIONS_DB_URL": urls["reservations"], "INVENTORY_DB_URL": urls["inventory"]}
    setup = subprocess.run([str(BIN / "drive"), "setup"], cwd=ROOT, env=env, capture_output=True, text=True)
    if setup.returncode != 0:
        log(f"drive setup failed:\n{setup.stdout}\n{setup.stderr}")
        return 2
    log(f"databases and vhost {args.vhost!r} recreated; {setup.stdout.strip()}; "
        f"{load_pickup_points(urls['reservations'])} pickup points")

    services = Services(env, results)
    try:
        reservations = [services.start("reservations", k, 18001 + 10 * k) for k in range(args.reservations_procs)]
        inventory = [services.start("inventory", k, 18002 + 10 * k) for k in range(args.inventory_procs)]
        services.wait_healthy()
        log(f"{args.reservations_procs} reservations + {args.inventory_procs} inventory process(es) healthy after "
            f"{time.monotonic() - started:.1f} s; logs in {results.relative_to(ROOT)}")
        if args.serve:
            flags = " ".join(f"--reservations-url {u}" for u in reservations)
            log(f"serving; in another shell: {BIN / 'python'} bench/pipeline.py {flags} "
                f"--inventory-url {inventory[0]} --amqp-uri {amqp}   (Ctrl-C here stops the services)")
            with suppress(KeyboardInterrupt):
                while all(proc.poll() is None for _, _, proc, _ in services.procs):
                    time.sleep(0.5)
            return 0
        figures, measured, baseline = pipeline.measure(
            reservations, inventory[0], amqp, args.reservations, args.concurrency, args.titles, args.warmup,
            args.loss_timeout, args.baseline_queue_type, log=log)
        depths = {q: d for q, d in queue_depths(args.management, args.vhost).items() if d}
    finally:
        services.stop()
        if not args.keep_vhost:
            delete_vhost(args.management, args.vhost)
    problems = services.problems()
    for name, lines in problems.items():
        log(f"{name} logged {len(lines)} warning(s)/error(s), e.g.: {lines[0][:400]}")
    extra = {"processes": f"{args.reservations_procs} reservations + {args.inventory_procs} inventory",
             "queues left non-empty": ", ".join(f"{q}={d}" for q, d in depths.items()) or "none",
             "service warnings/errors logged": str(sum(len(v) for v in problems.values())),
             "whole run s": f"{time.monotonic() - started:.0f}"}
    (results / "figures.json").write_text(json.dumps({**figures, "extra": extra}, indent=2))
    pipeline.report(figures, measured, baseline, args.concurrency, args.json, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
