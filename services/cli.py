"""`drive`: the tasks people run by hand — run the system, load demo data, make tokens, look after dead letters."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress

from services import DATABASES, SERVICE_CLASSES, service_classes
from services.bibliobus.cli import app as bibliobus_app
from services.common.api_client import DONE, EXIT_CODES, FINDING, UNREACHABLE, fail, table
from services.common.settings import amqp_uri

# "\b": click keeps the lines of that paragraph as they are.
app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help=f"{__doc__}\n\n\b\nExit codes, the same for every command:\n{EXIT_CODES}")
dead_letters = typer.Typer(no_args_is_help=True, help="Messages whose handler kept failing.")
app.add_typer(dead_letters, name="dead-letters")
app.add_typer(bibliobus_app, name="bibliobus")
console = Console()
err = Console(stderr=True)

SERVICES = {"reservations": 8001, "inventory": 8002, "notifications": 8003, "bibliobus": 8004, "web": 8005}
ROOT = Path(__file__).resolve().parent.parent


def db_url(service: str) -> str:
    return os.environ.get(f"{service.upper()}_DB_URL") or f"sqlite:///{ROOT / 'var' / f'{service}.db'}"


def version_callback(asked: bool) -> None:
    if asked:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"drive {version('drive')}")
        except PackageNotFoundError:
            typer.echo("drive (not installed: no version)")
        raise typer.Exit()


@app.callback()
def main_options(_version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                               help="print the version and exit")) -> None:
    pass


def check_broker() -> None:
    from kombu import Connection

    try:
        with Connection(amqp_uri(), connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        fail(f"RabbitMQ does not answer at {amqp_uri()} ({exc.__class__.__name__})",
             "start it (`rabbitmq-server -detached`) or set AMQP_URI", UNREACHABLE)


def migrate_all() -> None:
    from services.common.migrate import upgrade

    (ROOT / "var").mkdir(exist_ok=True)
    for service in DATABASES:
        try:
            upgrade(service, db_url(service))
        except Exception as exc:
            fail(f"cannot migrate the {service} database ({exc.__class__.__name__}: {exc})",
                 f"check {service.upper()}_DB_URL and that the database server runs", UNREACHABLE)


@app.command()
def setup() -> None:
    """Run every service's migrations and declare the broker's exchanges and queues."""
    from services.common.deployment import check_setup
    from services.common.messaging import declare_topology

    check_setup({"AMQP_URI": amqp_uri(), **{f"{s.upper()}_DB_URL": db_url(s) for s in DATABASES}})
    check_broker()
    migrate_all()
    queues = declare_topology(service_classes(), {"AMQP_URI": amqp_uri()})
    console.print(f"migrated {len(DATABASES)} databases, declared {len(queues)} handler queues")


@app.command("demo-data")
def demo_data(titles: int = typer.Option(300, help="how many titles"), seed: int = 7) -> None:
    """Load the reference network's pickup points, the bibliobus tour and a catalogue (idempotent but for
    the catalogue, loaded only when empty)."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from services.common.database import make_engine
    from services.common.relay import Events
    from services.demo import catalogue_rows, load_pickup_points, load_tour, to_csv
    from services.inventory.catalogue import import_rows
    from services.inventory.domain import parse_catalogue
    from services.inventory.models import Outbox, Title
    from services.inventory.policy import Policy
    from services.reservations.models import Base as _ReservationsBase  # noqa: F401

    setup()
    with Session(make_engine(db_url("reservations"))) as session, session.begin():
        points = load_pickup_points(session)
    points += load_tour(db_url("bibliobus"))  # stop_registered tells reservations about them
    engine = make_engine(db_url("inventory"))
    with Session(engine) as session:
        if session.scalar(select(func.count()).select_from(Title)):
            console.print(f"{points} pickup points; the catalogue already holds titles: left as it is")
            return
    sites = Policy({}).sites
    rows = parse_catalogue(to_csv(list(catalogue_rows(titles, seed))), sites)
    events = Events("inventory", Outbox, kick=lambda: None)
    with Progress(console=console) as progress:
        task = progress.add_task("cataloguing", total=len(rows))
        for start in range(0, len(rows), 100):
            with Session(engine) as session, session.begin():
                import_rows(session, events, rows[start:start + 100], sites)
            progress.advance(task, len(rows[start:start + 100]))
    console.print(f"{points} pickup points, {len({r.title for r in rows})} titles, {len(rows)} copies")


@app.command()
def token(role: str = typer.Option("staff", help="patron, staff, analyst or ops"),
          name: str | None = typer.Option(None, help="who the token is for: a person's name, e.g. \"Camille "
                                                     "Martin\" (staff, analyst, ops); the services record it as "
                                                     "who did what (prepared by, decided by, changed by)"),
          card: str | None = typer.Option(None, help="the patron's card number (role patron)"),
          hours: float = typer.Option(12, help="how long the token is valid")) -> None:
    """Print a bearer token (HS256) signed with JWT_SECRET, else the embedded default's.

    For a named member of staff:
      drive token --role staff --name "Camille Martin"
    The name is the token's subject: the services record it as who prepared,
    decided or changed something. For a patron:
      drive token --role patron --card 12345
    Send it as "Authorization: Bearer <token>", or export it as DRIVE_TOKEN
    for the other commands. With an identity provider (JWT_JWKS_URL), use
    its tokens instead.
    """
    from services.common.auth import TOKEN_ROLES, issue_token

    if role not in TOKEN_ROLES:
        fail(f"unknown role {role!r}", f"use one of {', '.join(TOKEN_ROLES)}")
    if role == "patron" and not card:
        fail("a patron token needs a card number", "add --card N")
    if role == "patron" and name:
        fail("a patron token is for a card, not a name", "use --card N (without --name)")
    typer.echo(issue_token({}, role, card or name or f"{role}-cli", hours))


@app.command("board-link")
def board_link(pickup_point: str = typer.Option(..., "--pickup-point", help="the counter's pickup point id"),
               hours: float = typer.Option(10, help="how long the link signs the counter in (a working day)"),
               name: str = typer.Option("counter", help="who the board acts as (recorded as who claimed, handed "
                                                        "over)")) -> None:
    """Print the URL that opens a counter's live board signed in as staff (the embedded default's sign-in).

    The staff token rides in the URL's fragment (after #): a browser never sends it to a server, so it is in no
    access log; the page moves it into an HttpOnly cookie and out of the address bar. Base: WEB_URL."""
    from services.common.auth import issue_token
    from services.common.settings import setting

    if not pickup_point.strip() or "/" in pickup_point or "#" in pickup_point:
        fail(f"not a pickup point id: {pickup_point!r}", "see GET /pickup-points on reservations")
    typer.echo(f"{setting(None, 'WEB_URL').rstrip('/')}/boards/{pickup_point}#{issue_token({}, 'staff', name, hours)}")


def listen_address(service: str, env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Where the service will listen: its `*_ADDRESS` variable if set, else its config.yaml's default."""
    from services.configuration import yaml_variables

    env = os.environ if env is None else env
    variable, default = next((var, default) for key, var, default in yaml_variables(service)
                             if key == "WEB_SERVER_ADDRESS")
    host, _, port = (env.get(variable) or default).rpartition(":")
    return ("127.0.0.1" if host in ("", "0.0.0.0") else host), int(port)


STOP_GRACE_SECONDS = 8.0  # after one SIGTERM each; then killed. Under `make up`'s promise of 10 s in all.


class _Stop:
    """SIGINT (a terminal's Ctrl-C) or SIGTERM: the first asks for a graceful stop, a second for a kill."""

    def __init__(self) -> None:
        self.asked = 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.asked += 1


def stop_children(procs: dict[str, subprocess.Popen], stop: _Stop, grace: float = STOP_GRACE_SECONDS) -> None:
    """ONE SIGTERM to each service still running, a bounded wait, then a kill for whoever is left (or at once
    on a second Ctrl-C)."""
    asked = stop.asked
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline and stop.asked == asked:
        time.sleep(0.1)
    for name, proc in procs.items():
        if proc.poll() is None:
            err.print(f"{name} did not stop in time: killed")
            proc.kill()
            proc.wait()
        console.print(f"{name} stopped ({proc.returncode})")


@app.command()
def up(demo: bool = typer.Option(True, help="load demo data when the catalogue is empty")) -> None:
    """Set up and run every service in the foreground (the embedded default: DRIVE_ENV=dev); Ctrl-C or one
    SIGTERM stops them all, each one gracefully, within 10 s."""
    os.environ.setdefault("DRIVE_ENV", "dev")
    if demo:
        demo_data(titles=300, seed=7)
    else:
        setup()
    env = dict(os.environ)
    for service in DATABASES:
        env.setdefault(f"{service.upper()}_DB_URL", db_url(service))
    addresses = {name: listen_address(name, env) for name in SERVICES}
    stop = _Stop()
    # Each service in a session of its own: a terminal's Ctrl-C reaches `drive up` only, which sends each one
    # SIGTERM, once (a second signal would stop it twice).
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "nameko", "run", "--config", str(ROOT / "services" / name / "config.yaml"),
         SERVICE_CLASSES[name]], cwd=ROOT, env=env, start_new_session=True) for name in SERVICES}
    console.print(table("Drive is running", ("service", "URL", "API document"),
                        [(name, f"http://{host}:{port}", f"http://{host}:{port}/openapi.json")
                         for name, (host, port) in addresses.items()], keep=("service", "URL")))
    console.print("a staff token: [bold]drive token --role staff[/]   ·   a counter's board: "
                  "[bold]drive board-link --pickup-point central-adult[/]   ·   Ctrl-C stops everything")
    while not stop.asked and all(p.poll() is None for p in procs.values()):
        time.sleep(0.2)
    crashed = [name for name, p in procs.items() if p.poll() is not None] if not stop.asked else []
    stop_children(procs, stop)
    if crashed:
        fail(f"{', '.join(crashed)} stopped on its own", "see its log lines above", UNREACHABLE)


def _dates(first: str | None, last: str | None) -> tuple[str, str]:
    """`--from`/`--to` as given (the service says which one it refuses); by default, the last 7 days."""
    from datetime import date, datetime, timedelta
    from zoneinfo import ZoneInfo

    from services.reservations.policy import Policy

    today = datetime.now(ZoneInfo(Policy({}).zone)).date()
    last = last or today.isoformat()
    if first is None:
        try:
            first = (date.fromisoformat(last) - timedelta(days=6)).isoformat()
        except ValueError:
            first = last  # the service names what does not parse
    return first, last


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}".removesuffix(".0")


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@app.command()
def stats(first: str | None = typer.Option(None, "--from", help="first day, YYYY-MM-DD (default: 6 days before "
                                                                 "--to)"),
          last: str | None = typer.Option(None, "--to", help="last day, included (default: today)"),
          url: str | None = typer.Option(None, help="the reservations service (default: RESERVATIONS_URL, else "
                                                    "http://127.0.0.1:8001)"),
          as_json: bool = typer.Option(False, "--json", help="print the service's JSON answer")) -> None:
    """The figures per day, pickup point and channel, slot occupancy and totals (GET /stats, as staff)."""
    import json

    from services.common import api_client

    first, last = _dates(first, last)
    base = url or os.environ.get("RESERVATIONS_URL") or f"http://127.0.0.1:{SERVICES['reservations']}"
    answer = api_client.call(base, "GET", "/stats", role="staff", params={"from": first, "to": last},
                             unreachable_hint="start it (`drive up`) or pass --url",
                             refused_hint="check --from and --to (YYYY-MM-DD)")
    report = answer.json()
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    span = f"{report['from']} → {report['to']}"
    counts = ("placed", "sel. asked", "sel. prepared", "nothing avail.", "median prep. min", "collected",
              "no-shows", "median wait s")
    rows = table(f"Figures per day, pickup point and channel, {span}", ("day", "pickup point", "channel", *counts),
                 [(r["day"], r["pickup_point"], r["channel"], r["reservations_placed"], r["selections_asked"],
                   r["selections_prepared"], r["selections_nothing_available"], _figure(r["median_prepare_minutes"]),
                   r["collections"], r["no_shows"], _figure(r["median_wait_seconds"])) for r in report["rows"]],
                 keep=("day", "pickup point"), right=counts)
    console.print(rows if report["rows"] else f"nothing happened {span}")
    slots = table("Slot occupancy", ("day", "pickup point", "places", "booked", "occupancy"),
                  [(s["day"], s["pickup_point"], s["places"], s["booked"], _share(s["occupancy"]))
                   for s in report["slots"]], keep=("day", "pickup point"), right=("places", "booked", "occupancy"))
    console.print(slots if report["slots"] else "no appointment slots in these days")
    t = report["totals"]
    totals = table(f"Totals, {span}", ("figure", "value"), (
        ("reservations placed", t["reservations_placed"]), ("selections asked", t["selections_asked"]),
        ("selections prepared", t["selections_prepared"]),
        ("  of which nothing available", t["selections_nothing_available"]),
        ("median time to prepare (min)", _figure(t["median_prepare_minutes"])),
        ("collections", t["collections"]), ("no-shows", t["no_shows"]),
        ("median wait at the counter (s)", _figure(t["median_wait_seconds"])),
        ("slot places", t["places"]), ("slot places booked", t["booked"]),
        ("slot occupancy", _share(t["occupancy"]))), right=("value",))
    console.print(totals)


def _service_url(name: str) -> str:
    return os.environ.get(f"{name.upper()}_URL") or f"http://127.0.0.1:{SERVICES[name]}"


@app.command()
def check(fix: bool = typer.Option(False, "--fix", help="repair what events can repair (reservations says again "
                                                        "what inventory missed), then check again"),
          wait: float = typer.Option(0, help="seconds to keep checking until the services agree (events in "
                                             "flight settle); 0: check once"),
          stuck_after: float = typer.Option(60, help="seconds after which a reservation still `placed` is stuck"),
          as_json: bool = typer.Option(False, "--json", help="print the report as JSON")) -> None:
    """Do the services agree? Per title, inventory's copies and waitlist places against reservations' open lines;
    copies or places held for closed lines; reservations stuck in `placed`; outbox rows stuck; dead letters.
    Read-only unless --fix. Exit 0 when all agree, 1 when something disagrees, 3 when a service or the broker
    does not answer.
    Services: RESERVATIONS_URL, INVENTORY_URL, NOTIFICATIONS_URL, BIBLIOBUS_URL (default 127.0.0.1, their ports)."""
    import json
    from functools import partial

    from services import check as agreement
    from services.common import api_client
    from services.common.deadletters import count_dead_letters

    # The services that keep records to agree on: web keeps none (it reads through reservations).
    urls = {name: _service_url(name) for name in DATABASES}
    call = partial(api_client.call, role="ops", unreachable_hint="start it (`drive up`) or set its *_URL")
    check_broker()

    def run() -> "agreement.Report":
        return agreement.audit_until_clean(urls, call, partial(count_dead_letters, amqp_uri()), stuck_after, wait)

    report = run()
    repaired: list[dict] = []
    if fix and not report.clean:
        repaired = agreement.repair(urls, call, report)
        wait = max(wait, 10)  # the repairs travel as events: give them time to land
        report = run()
    if as_json:
        typer.echo(json.dumps(report.as_dict() | {"repaired": repaired}, indent=2))
    else:
        _print_check(report, repaired)
    down = any(f.kind == "service_down" for f in report.findings)
    raise typer.Exit(DONE if report.clean else UNREACHABLE if down else FINDING)


def _print_check(report, repaired: list[dict]) -> None:
    from services.check import KINDS

    differing = [t for t in report.titles if not t.agrees]
    titles = table(f"Per title: {len(report.titles) - len(differing)} of {len(report.titles)} agree",
                   ("title", "open lines (reservations)", "copies held (inventory)", "waitlist (inventory)"),
                   [(t.title_id, t.open_lines, t.copies_held, t.waiting) for t in differing], keep=("title",),
                   right=("open lines (reservations)", "copies held (inventory)", "waitlist (inventory)"))
    console.print(titles if differing else titles.title)
    if repaired:
        console.print(table("Said again (--fix)", ("reservation", "status", "event"),
                            [(r["reservation_id"], r["status"] or "unknown",
                              r["announced"] or "- (no event repairs it)") for r in repaired], keep=("reservation",)))
    if not report.findings:
        console.print("[green]the services agree[/]" if report.clean else "")
        return
    findings = table(f"{len(report.findings)} finding(s)", ("what", "subject", "title", "detail"),
                     [(KINDS[f.kind], f.subject, f.title_id or "-", f.detail) for f in report.findings],
                     keep=("subject",))
    console.print(findings)


@dead_letters.command("list")
def dead_letters_list(limit: int = 100) -> None:
    """Show the dead letters (they stay in the queue)."""
    from services.common.deadletters import list_dead_letters

    check_broker()
    letters = list_dead_letters(amqp_uri(), limit=limit)
    shown = table(f"{len(letters)} dead letter(s)", ("#", "event id", "type", "queue", "reason", "count",
                                                     "first death"),
                  [(d.position, d.event_id or "-", f"{d.source}.{d.event_type}", d.queue or "-", d.reason or "-",
                    d.count, d.first_death_at or "-") for d in letters], keep=("event id",), right=("#", "count"))
    console.print(shown)


@dead_letters.command("replay")
def dead_letters_replay(event_id: str | None = typer.Option(None, "--id", help="one event; all if absent")) -> None:
    """Send dead letters back to the queue of the handler that failed them."""
    from services.common.deadletters import replay

    check_broker()
    console.print(f"replayed {replay(amqp_uri(), event_id=event_id)} message(s)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
