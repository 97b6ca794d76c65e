"""`drive bibliobus …`: what demand analysts do from a terminal, over the bibliobus HTTP API.

BIBLIOBUS_URL (default http://127.0.0.1:8004) says where the service answers; DRIVE_TOKEN is the bearer
token (default: one minted with the embedded default's shared secret, role analyst — staff for the manifest).
"""

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
import typer
from rich.console import Console

from services.bibliobus.policy import Policy
from services.common import api_client

app = typer.Typer(no_args_is_help=True, help="Bibliobus stops: demand, thresholds, overrides, what-ifs.")
console = Console()
REASON = typer.Option(..., "--reason", help="why (kept in the audit log)")
PNG = typer.Option(None, "--png", help="also write the chart to this PNG file")
JSON = typer.Option(False, "--json", help="print the service's JSON answer instead of a table")


def call(method: str, path: str, role: str = "analyst", **kwargs: Any) -> requests.Response:
    return api_client.call(os.environ.get("BIBLIOBUS_URL", "http://127.0.0.1:8004"), method, path, role=role,
                           unreachable_hint="start it (`drive up`) or set BIBLIOBUS_URL", **kwargs)


def local(moment: str | None) -> str:
    if not moment:
        return "-"
    zone = ZoneInfo(Policy({}).timezone)
    return datetime.fromisoformat(moment).astimezone(zone).strftime("%a %d %b %H:%M")


def state(stop: dict) -> str:
    word = "[green]open[/]" if stop["enabled"] else "[dim]closed[/]"
    return word if stop["mode"] == "auto" else f"{word} [blue](forced {stop['mode']})[/]"


def table(title: str, columns: list[str], rows: list[list[Any]], keep: tuple[str, ...] = ()) -> None:
    console.print(api_client.table(title, columns, rows, keep=keep))


def shown_as_json(as_json: bool, answer: Any) -> bool:
    """`--json`: print the answer and say so (the command then prints nothing else)."""
    if as_json:
        api_client.print_json(answer)
    return as_json


def save(path: Path | None, answer: requests.Response | None, quiet: bool = False) -> None:
    if path is not None and answer is not None:
        path.write_bytes(answer.content)
        if not quiet:
            console.print(f"chart written to {path}")


@app.command()
def stops(as_json: bool = JSON) -> None:
    """Every stop: state, demand against its thresholds (opens at / closes below), reservations to serve, next
    visit."""
    found = call("GET", "/stops").json()
    if shown_as_json(as_json, found):
        return
    table(f"{len(found)} bibliobus stop(s)", ["stop", "name", "state", "demand", "opens / closes", "pending",
                                             "next visit"],
          [[s["id"], s["name"], state(s), s["demand"], f"{s['enable_threshold']} / {s['disable_threshold']}",
            s["pending_reservations"], local((s["next_visit"] or {}).get("arrives_at"))] for s in found],
          keep=("stop", "demand", "pending"))


@app.command()
def demand(stop: str, days: int = typer.Option(30, help="days to show"), png: Path | None = PNG,
           as_json: bool = JSON) -> None:
    """A stop's demand day by day against its thresholds."""
    report = call("GET", f"/stops/{stop}/demand", params={"days": days}).json()
    if shown_as_json(as_json, report):
        save(png, call("GET", f"/stops/{stop}/demand.png", params={"days": days}) if png else None, quiet=True)
        return
    console.print(f"[bold]{report['name']}[/] ({report['district']}): {state(report)}, demand "
                  f"{report['demand']} over {report['window_days']} days ({report['reservations_in_window']} "
                  f"reservation signal(s), {report['interests_in_window']} interest(s)); opens at "
                  f"{report['enable_threshold']}, closes below {report['disable_threshold']}")
    table("demand by day", ["day", "demand", ""],
          [[p["day"], p["demand"], "█" * p["demand"]] for p in report["series"]])
    save(png, call("GET", f"/stops/{stop}/demand.png", params={"days": days}) if png else None)


def _override(stop: str, mode: str, reason: str, as_json: bool) -> None:
    answer = call("POST", f"/stops/{stop}/override", json={"mode": mode, "reason": reason}).json()
    if not shown_as_json(as_json, answer):
        console.print(f"{answer['name']}: {state(answer)} (demand {answer['demand']})")


@app.command()
def enable(stop: str, reason: str = REASON, as_json: bool = JSON) -> None:
    """Force a stop open, whatever its demand."""
    _override(stop, "on", reason, as_json)


@app.command()
def disable(stop: str, reason: str = REASON, as_json: bool = JSON) -> None:
    """Force a stop closed, whatever its demand."""
    _override(stop, "off", reason, as_json)


@app.command()
def auto(stop: str, reason: str = REASON, as_json: bool = JSON) -> None:
    """Give a stop back to the rule."""
    _override(stop, "auto", reason, as_json)


@app.command()
def thresholds(enable: int | None = typer.Option(None, "--enable", help="open at this demand"),
               disable: int | None = typer.Option(None, "--disable", help="close below this demand"),
               consecutive: int | None = typer.Option(None, help="evaluation rounds below before closing"),
               window: int | None = typer.Option(None, help="days of demand counted"),
               stop: str | None = typer.Option(None, help="set this stop's own thresholds instead"),
               reason: str | None = typer.Option(None, help="why (needed to change them)"),
               history: bool = typer.Option(False, "--history", help="who changed the network's, when, how, why"),
               as_json: bool = JSON) -> None:
    """Show the network's thresholds, or set them (or a stop's own) with --enable/--disable and --reason;
    --history: every change of the network's, newest first."""
    if history:
        changes = call("GET", "/thresholds/history").json()
        if shown_as_json(as_json, changes):
            return
        values = ("enable_threshold", "disable_threshold", "consecutive_evaluations", "window_days")
        table("changes of the network's thresholds (opens at / closes below / after rounds / window)",
              ["when", "who", "from", "to", "why"],
              [[local(c["at"]), c["changed_by"], " / ".join("?" if c["before"][k] is None else str(c["before"][k])
                                                           for k in values),
                " / ".join(str(c["after"][k]) for k in values), c["reason"]] for c in changes])
        return
    if stop is not None:
        body = {"enable_threshold": enable, "disable_threshold": disable, "consecutive_evaluations": consecutive,
                "reason": reason}
        answer = call("PUT", f"/stops/{stop}/thresholds", json=body).json()
        if shown_as_json(as_json, answer):
            return
        console.print(f"{answer['name']}: opens at {answer['enable_threshold']}, closes below "
                      f"{answer['disable_threshold']} after {answer['consecutive_evaluations']} round(s)")
        return
    if enable is None and disable is None:
        current = call("GET", "/thresholds").json()
    else:
        current = call("PUT", "/thresholds", json={"enable_threshold": enable, "disable_threshold": disable,
                                                   "consecutive_evaluations": consecutive, "window_days": window,
                                                   "reason": reason}).json()
    if shown_as_json(as_json, current):
        return
    table("network thresholds", ["opens at", "closes below", "after rounds", "window (days)", "set by"],
          [[current["enable_threshold"], current["disable_threshold"], current["consecutive_evaluations"],
            current["window_days"], current["updated_by"] or "configuration"]])


@app.command()
def history(stop: str, limit: int = 50, as_json: bool = JSON) -> None:
    """Every decision about a stop, newest first: who, what, why, and the demand then."""
    entries = call("GET", f"/stops/{stop}/history", params={"limit": limit}).json()
    if shown_as_json(as_json, entries):
        return
    table(f"decisions about {stop}", ["when", "who", "what", "reason", "why", "demand", "thresholds"],
          [[local(d["at"]), d["decided_by"], d["action"], d["reason"], d["note"] or "-",
            "-" if d["demand"] is None else d["demand"], f"{d['enable_threshold']} / {d['disable_threshold']}"]
           for d in entries])


@app.command()
def manifest(stop: str, as_json: bool = JSON) -> None:
    """The ready reservations to load for a stop's next visit."""
    found = call("GET", f"/stops/{stop}/manifest", role="staff").json()
    if shown_as_json(as_json, found):
        return
    visit = found["visit"] or {}
    table(f"{found['name']} — visit {local(visit.get('arrives_at'))}: {len(found['reservations'])} / "
          f"{found['capacity']} reservation(s)", ["reservation", "card", "titles"],
          [[r["reservation_id"], r["patron"], "; ".join(f"{ln['title']} ({ln['barcode']})" for ln in r["lines"])]
           for r in found["reservations"]], keep=("reservation",))


@app.command("what-if")
def what_if(first: datetime = typer.Option(..., "--from", formats=["%Y-%m-%d"], help="first day"),
            last: datetime = typer.Option(date.today().isoformat(), "--to", formats=["%Y-%m-%d"], help="last day"),
            enable: int = typer.Option(..., "--enable"), disable: int = typer.Option(..., "--disable"),
            consecutive: int | None = typer.Option(None, help="days in a row below before closing"),
            window: int | None = typer.Option(None, help="days of demand counted"), png: Path | None = PNG,
            as_json: bool = JSON) -> None:
    """Replay a past period's demand under other thresholds: which stop would have been open, day by day."""
    body = {"first": first.date().isoformat(), "last": last.date().isoformat(), "enable_threshold": enable,
            "disable_threshold": disable, "consecutive_evaluations": consecutive, "window_days": window}
    result = call("POST", "/what-if", json=body).json()
    if shown_as_json(as_json, result):
        save(png, call("POST", "/what-if", params={"format": "png"}, json=body) if png else None, quiet=True)
        return
    table(f"what if: open at {result['enable_threshold']}, close below {result['disable_threshold']} "
          f"({result['first']} → {result['last']}; ■ open · closed)", ["stop", "open days", "day by day"],
          [[s["name"], s["open_days"], "".join("■" if o else "·" for o in s["open"])] for s in result["stops"]])
    save(png, call("POST", "/what-if", params={"format": "png"}, json=body) if png else None)


@app.command("map")
def map_(png: Path = typer.Option(..., "--png", help="write the chart to this PNG file"),
         as_json: bool = JSON) -> None:
    """The stops at their positions, sized by demand, coloured by state (PNG)."""
    answer = call("GET", "/map.png")
    save(png, answer, quiet=as_json)
    shown_as_json(as_json, {"chart": str(png), "bytes": len(answer.content)})

