"""`make bench`: the services on fresh PostgreSQL databases and a dedicated RabbitMQ vhost, then `bench/pipeline.py`.

Steps: drop and recreate the databases `drive_bench_reservations` / `drive_bench_inventory`, recreate the vhost
`drive_bench` (management API), `drive setup` (migrations + broker queues), load the pickup points, start the
services with `nameko run` (replicas on their own ports: reservations 18001, 18011, ...; inventory 18002, 18012,
...), wait for `/health`, measure (pipeline, then the raw pika baseline), and stop the services with SIGTERM —
always, even when something failed. Service logs (LOG_LEVEL=WARNING) and the figures go to bench/results/<time>/.

    .venv/bin/python bench/run_bench.py [--json] [-n 2000] [-c 50] [--reservations-procs 1] [--inventory-procs 2]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import IO
from urllib.parse import quote

import requests

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # imported with the services' modules
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pipeline  # noqa: E402

from services import SERVICE_CLASSES as ALL_SERVICE_CLASSES  # noqa: E402

DATABASES = {"reservations": "drive_bench_reservations", "inventory": "drive_bench_inventory"}
LOUD = {"warning", "error", "critical"}
SERVICE_CLASSES = {name: ALL_SERVICE_CLASSES[name] for name in ("reservations", "inventory")}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def recreate_database(pg: str, name: str) -> str:
    """Drop (with its connections) and create one database on the server `pg` (a URL without a database);
    return its SQLAlchemy URL. Every bench starts from empty databases of its own."""
    import psycopg2

    conn = psycopg2.connect(f"{pg}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"{pg.replace('postgresql://', 'postgresql+psycopg2://')}/{name}"


def recreate_databases(pg: str) -> dict[str, str]:
    return {service: recreate_database(pg, name) for service, name in DATABASES.items()}


def hold_lock(results_root: Path) -> IO[str] | None:
    """The lock every bench takes (`bench/results/.lock`, held until the process ends): two runs at once would
    drop each other's databases, or share the CPU and skew each other. None when another run holds it."""
    results_root.mkdir(parents=True, exist_ok=True)
    lock = (results_root / ".lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        log("another bench run is in progress (bench/results/.lock): wait for it to finish")
        return None
    return lock


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


def reconcile(urls: dict[str, str], tag: str, expected: int, timeout: float = 30) -> dict[str, str]:
    """Every measured reservation as the services themselves record it: the reservations service learns its
    allocation from the same `items_allocated` event (its own queue, its own pace), inventory holds the copy."""
    from sqlalchemy import create_engine, text

    started = time.monotonic()
    reservations = create_engine(urls["reservations"])
    inventory = create_engine(urls["inventory"])
    try:
        while True:
            with reservations.connect() as conn:
                statuses = dict(conn.execute(text(
                    "SELECT status, count(*) FROM reservations WHERE patron LIKE :p GROUP BY status"),
                    {"p": f"b{tag}-m-%"}).all())
            if not statuses.get("placed") or time.monotonic() - started > timeout:
                break
            time.sleep(0.5)
        with inventory.connect() as conn:
            held = conn.execute(text(
                "SELECT count(*) FROM copies WHERE status = 'allocated' AND reservation_id IS NOT NULL "
                "AND barcode LIKE :b"), {"b": f"BENCH-{tag}-%"}).scalar_one()
    finally:
        reservations.dispose()
        inventory.dispose()
    recorded = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "none"
    return {"reservations DB (measured)": f"{recorded} of {expected}; caught up "
                                          f"{time.monotonic() - started:.1f} s after the run",
            "inventory copies allocated (incl. warm-up)": str(held)}


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

    def __init__(self, env: dict[str, str], logs: Path, launcher: str | None = None) -> None:
        self.env = env
        self.logs = logs
        self.launcher = [launcher] if launcher else ["-m", "nameko"]
        self.procs: list[tuple[str, str, subprocess.Popen, Path]] = []

    def start(self, service: str, replica: int, port: int) -> str:
        env = dict(self.env, **{f"{service.upper()}_ADDRESS": f"127.0.0.1:{port}"})
        path = self.logs / f"{service}-{replica}.log"
        out = path.open("wb")
        proc = subprocess.Popen(
            [str(BIN / "python"), *self.launcher, "run", "--config", str(ROOT / "services" / service / "config.yaml"),
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

    def rss(self) -> dict[str, float]:
        """Each process's resident memory (MB), read from /proc while it still runs."""
        sizes = {}
        for name, _, proc, _ in self.procs:
            with suppress(OSError, ValueError, IndexError):
                status = Path(f"/proc/{proc.pid}/status").read_text()
                sizes[name] = int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1]) / 1024
        return sizes

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

    def problems(self, since: float = 0.0, until: float = float("inf")) -> dict[str, list[str]]:
        """WARNING and worse that each process logged between two wall-clock times (the services log JSON lines;
        lines that are not JSON, such as a traceback on stderr, always count)."""
        found = {}
        for name, _, _, path in self.procs:
            lines = []
            for line in path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    if "Traceback" in line or "Error" in line:
                        lines.append(line)
                    continue
                if not isinstance(record, dict) or str(record.get("level", "")).lower() not in LOUD:
                    continue
                with suppress(KeyError, ValueError):
                    at = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
                    if not since <= at <= until:
                        continue
                lines.append(line)
            if lines:
                found[name] = lines
        return found


class CpuMeter:
    """CPU used during the measured window: by each service process, this client, the broker, the bench databases'
    PostgreSQL backends and everything else on the machine (other users of the machine skew the figures)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, services: Services) -> None:
        self.services = services
        self.marks: dict[str, tuple[float, dict[str, float], float]] = {}
        self.wall: dict[str, float] = {}

    @classmethod
    def _pid_cpu(cls, pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / cls.TICK
        except (OSError, IndexError, ValueError):
            return 0.0

    @staticmethod
    def _cmdline(pid: str) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    def _groups(self) -> dict[str, float]:
        groups = {name: self._pid_cpu(proc.pid) for name, _, proc, _ in self.services.procs}
        groups["bench client"] = sum(os.times()[:2])
        broker = postgres = 0.0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            line = self._cmdline(pid)
            if "beam.smp" in line and "rabbit" in line:
                broker += self._pid_cpu(int(pid))
            elif line.startswith("postgres: ") and "drive_bench" in line:
                postgres += self._pid_cpu(int(pid))
        groups["rabbitmq"], groups["postgres (bench dbs)"] = broker, postgres
        return groups

    @classmethod
    def _machine_busy(cls) -> float:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + values[4]
        return (sum(values[:8]) - idle) / cls.TICK

    def __call__(self, mark: str) -> None:
        self.marks[mark] = (time.monotonic(), self._groups(), self._machine_busy())
        self.wall[mark] = time.time()

    def report(self, reservations: int) -> dict[str, str]:
        if "start" not in self.marks or "end" not in self.marks:
            return {}
        (t0, g0, m0), (t1, g1, m1) = self.marks["start"], self.marks["end"]
        seconds = t1 - t0
        used = {name: g1[name] - g0.get(name, 0.0) for name in g1}
        used["other processes"] = max(0.0, (m1 - m0) - sum(used.values()))
        rows = {f"CPU {name}": f"{100 * cpu / seconds:.0f}% · {1000 * cpu / reservations:.1f} ms/resv"
                for name, cpu in used.items()}
        rows["CPU machine busy"] = f"{100 * (m1 - m0) / seconds:.0f}% of {100 * os.cpu_count()}%"
        return rows


def profile(pid: int, seconds: int, out: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "py-spy"), "record", "-p", str(pid), "-d", str(seconds), "-f", "raw",
                             "-o", str(out), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def finish_profile(spy: subprocess.Popen | None, seconds: int) -> None:
    """Let py-spy write its profile (it records `seconds`), then stop it whatever it does."""
    if spy is None:
        return
    try:
        spy.wait(seconds + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_run(suffix: str = "") -> tuple[Path, IO] | None:
    """This run's results folder and the one-run-at-a-time lock (None: another run holds it); SIGTERM then runs
    the finally blocks, so the services started are always stopped."""
    results = ROOT / "bench" / "results" / (datetime.now().strftime("%Y%m%d-%H%M%S") + suffix)
    results.mkdir(parents=True, exist_ok=True)
    lock = hold_lock(results.parent)
    if lock is None:
        return None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return results, lock


def service_problems(services: Services, cpu: CpuMeter | None, log: Callable[[str], None]) -> dict:
    """Warnings and errors the services logged while measured, each kind said once."""
    problems = services.problems(cpu.wall.get("start", 0.0), cpu.wall.get("end", float("inf"))) if cpu else {}
    for name, lines in problems.items():
        log(f"{name} logged {len(lines)} warning(s)/error(s) while measured, e.g.: {lines[0][:400]}")
    return problems


def add_infra_arguments(p: argparse.ArgumentParser, vhost: str, json_flag: bool = False) -> None:
    """Where the bench's servers are, and how it starts the services: the same options for every bench."""
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="server, without a database")
    p.add_argument("--broker", default="127.0.0.1:5672")
    p.add_argument("--management", default="http://guest:guest@127.0.0.1:15672")
    p.add_argument("--vhost", default=vhost)
    p.add_argument("--keep-vhost", action="store_true", help="leave the vhost (and its queues) after the run")
    p.add_argument("--launcher", help="for experiments: a script run as `python SCRIPT run --config ...` instead of "
                                       "`python -m nameko run ...` (e.g. one that patches a service first)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="end with one JSON line of the figures")


def main() -> int:
    p = pipeline.parser()
    p.add_argument("--reservations-procs", type=int, default=int(os.environ.get("BENCH_RESERVATIONS_PROCS", 1)))
    p.add_argument("--inventory-procs", type=int, default=int(os.environ.get("BENCH_INVENTORY_PROCS", 2)))
    add_infra_arguments(p, "drive_bench")
    p.add_argument("--py-spy", type=int, default=0, metavar="SECONDS",
                   help="profile the first reservations and inventory processes with py-spy (raw, --nonblocking) "
                        "for SECONDS from the start of the measured placements")
    p.add_argument("--serve", action="store_true",
                   help="set up and start the services, then wait (Ctrl-C stops them): run pipeline.py against them")
    args = p.parse_args()

    started = time.monotonic()
    run = start_run()
    if run is None:
        return 3
    results, lock = run

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

    services = Services(env, results, args.launcher)
    try:
        reservations = [services.start("reservations", k, 18001 + 10 * k) for k in range(args.reservations_procs)]
        inventory = [services.start("inventory", k, 18002 + 10 * k) for k in range(args.inventory_procs)]
        services.wait_healthy()
        log(f"{args.reservations_procs} reservations + {args.inventory_procs} inventory process(es) healthy after "
            f"{time.monotonic() - started:.1f} s; logs in {results.relative_to(ROOT)}")
        if args.serve:
            flags = " ".join([*(f"--reservations-url {u}" for u in reservations),
                              *(f"--inventory-url {u}" for u in inventory)])
            log(f"serving; in another shell: {BIN / 'python'} bench/pipeline.py {flags} --amqp-uri {amqp}   "
                "(Ctrl-C here stops the services)")
            with suppress(KeyboardInterrupt):
                while all(proc.poll() is None for _, _, proc, _ in services.procs):
                    time.sleep(0.5)
            return 0
        cpu = CpuMeter(services)
        spies: list[subprocess.Popen] = []

        def window(mark: str) -> None:
            cpu(mark)
            if mark == "start" and args.py_spy:
                spies.extend(profile(proc.pid, args.py_spy, results / f"{name}.pyspy.txt")
                             for name, _, proc, _ in services.procs if name.endswith("-0"))

        figures, measured, baseline = pipeline.measure(
            reservations, inventory, amqp, args.reservations, args.concurrency, args.titles, args.warmup,
            args.loss_timeout, args.baseline_queue_type, log=log, window=window, rate=args.rate)
        rss = services.rss()
        for spy in spies:
            finish_profile(spy, args.py_spy)
        depths = {q: d for q, d in queue_depths(args.management, args.vhost).items() if d}
        recorded = reconcile(urls, measured.tag, args.reservations, args.loss_timeout)
    finally:
        services.stop()
        if not args.keep_vhost:
            delete_vhost(args.management, args.vhost)
    problems = service_problems(services, cpu, log)
    extra = {"processes": f"{args.reservations_procs} reservations + {args.inventory_procs} inventory",
             "queues non-empty at the end (management API, ~5 s stale)":
                 ", ".join(f"{q}={d}" for q, d in depths.items()) or "none",
             **recorded,
             "service warnings/errors while measured": str(sum(len(v) for v in problems.values())),
             **cpu.report(args.reservations),
             **{f"RSS {name} MB": f"{mb:.0f}" for name, mb in rss.items()},
             "whole run s": f"{time.monotonic() - started:.0f}"}
    (results / "figures.json").write_text(json.dumps({**figures, "extra": extra}, indent=2))
    pipeline.report(figures, measured, baseline, args.concurrency, args.json, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
