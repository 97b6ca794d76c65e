"""`drive check`: do the services agree? Inventory's copies and waitlist places against reservations' open lines,
reservations stuck in `placed`, outbox rows stuck, dead letters, services that do not answer.

It reads each service through its own API (an `ops` token), never another service's database; `--fix` repairs
through the normal events: reservations says again (marked `reannounced`) the cancellation or expiry that
inventory missed, or the placement of a reservation stuck in `placed`. `compare` is the rule, on plain values."""

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

# Findings that an event repairs: the reservation to say again.
REPAIRABLE = ("held_for_closed_line", "waiting_for_closed_line", "stuck_placed")


@dataclass(frozen=True)
class Finding:
    kind: str  # see KINDS
    subject: str  # a reservation id, or a service's name
    detail: str
    title_id: str | None = None


KINDS = {
    "held_for_closed_line": "a copy set aside for a line that reservations has closed (or does not know)",
    "waiting_for_closed_line": "a waitlist place of a line that reservations has closed (or does not know)",
    "line_holds_nothing": "an open line that inventory neither holds a copy for nor queues",
    "line_differs": "reservations and inventory differ on what an open line holds",
    "stuck_placed": "a reservation still `placed` (inventory never answered)",
    "outbox_stuck": "events written but not published for over a minute",
    "dead_letters": "messages whose handler kept failing, waiting for ops",
    "service_down": "a service that does not answer",
}


@dataclass(frozen=True)
class TitleAgreement:
    title_id: str
    open_lines: int
    copies_held: int
    waiting: int

    @property
    def agrees(self) -> bool:
        return self.open_lines == self.copies_held + self.waiting


@dataclass
class Report:
    titles: list[TitleAgreement] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings and all(t.agrees for t in self.titles)

    def to_reannounce(self) -> list[str]:
        return list(dict.fromkeys(f.subject for f in self.findings if f.kind in REPAIRABLE))

    def as_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "titles": [asdict(t) | {"agrees": t.agrees} for t in self.titles],
                "findings": [asdict(f) for f in self.findings]}


def compare(lines: Iterable[Mapping], held: Iterable[Mapping], waiting: Iterable[Mapping],
            stuck_placed: Iterable[str] = ()) -> Report:
    """Reservations' open lines (`reservation_id, line_id, title_id, status`) against inventory's copies set aside
    and waitlist places (`reservation_id, line_id, title_id`). A line still `pending` (its placement not yet
    answered) agrees with whatever inventory holds for it: the answer may be on its way."""
    lines = {(ln["reservation_id"], ln["line_id"]): ln for ln in lines}
    held = {(h["reservation_id"], h["line_id"]): h for h in held}
    waiting = {(w["reservation_id"], w["line_id"]): w for w in waiting}
    report = Report()
    for key, entry in held.items():
        if key not in lines:
            report.findings.append(Finding("held_for_closed_line", key[0], f"copy {entry.get('barcode')}, line "
                                           f"{key[1]}", entry["title_id"]))
    for key, entry in waiting.items():
        if key not in lines:
            report.findings.append(Finding("waiting_for_closed_line", key[0], f"line {key[1]}", entry["title_id"]))
    expected = {"allocated": held, "waitlisted": waiting}
    for key, line in lines.items():
        if key not in held and key not in waiting:
            if line["status"] != "pending":
                report.findings.append(Finding("line_holds_nothing", key[0], f"line {key[1]} is {line['status']}",
                                               line["title_id"]))
        elif line["status"] in expected and key not in expected[line["status"]]:
            report.findings.append(Finding("line_differs", key[0], f"line {key[1]} is {line['status']} in "
                                           "reservations", line["title_id"]))
    report.findings += [Finding("stuck_placed", r, "placed, never answered by inventory") for r in stuck_placed]
    opened = Counter(line["title_id"] for line in lines.values())
    copies = Counter(entry["title_id"] for entry in held.values())
    queued = Counter(entry["title_id"] for entry in waiting.values())
    report.titles = [TitleAgreement(t, opened[t], copies[t], queued[t]) for t in sorted(opened | copies | queued)]
    return report


# --- reading the services -------------------------------------------------------------------------------------

Call = Callable[..., requests.Response]  # services.common.api_client.call, bound to its hints


def audit(urls: Mapping[str, str], call: Call, dead_letters: Callable[[], int],
          stuck_after_seconds: float = 60) -> Report:
    """Ask every service, then compare. `urls`: service name → base URL."""
    health = _health(urls)
    downs = [Finding("service_down", name, answer) for name, answer in health.items() if isinstance(answer, str)]
    if any(f.subject in ("reservations", "inventory") for f in downs):
        return Report(findings=downs)
    lines = call(urls["reservations"], "GET", "/audit/lines",
                 params={"stuck_after_seconds": stuck_after_seconds}).json()
    holdings = call(urls["inventory"], "GET", "/audit/holdings").json()
    report = compare(lines["lines"], holdings["held"], holdings["waiting"], lines["stuck_placed"])
    report.findings += downs
    for name, answer in health.items():
        if isinstance(answer, dict) and answer.get("checks", {}).get("outbox_stuck"):
            report.findings.append(Finding("outbox_stuck", name, f"{answer['checks']['outbox_stuck']} row(s)"))
    letters = dead_letters()
    if letters:
        report.findings.append(Finding("dead_letters", "drive.dead-letter", f"{letters} message(s): "
                                       "`drive dead-letters list`"))
    return report


def audit_until_clean(urls: Mapping[str, str], call: Call, dead_letters: Callable[[], int],
                      stuck_after_seconds: float = 60, wait: float = 0) -> Report:
    """`audit` again, up to `wait` seconds, until the services agree: events in flight land meanwhile."""
    deadline = time.monotonic() + wait
    while True:
        report = audit(urls, call, dead_letters, stuck_after_seconds)
        if report.clean or time.monotonic() >= deadline:
            return report
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))


def _health(urls: Mapping[str, str]) -> dict[str, dict | str]:
    answers: dict[str, dict | str] = {}
    for name, base in urls.items():
        try:
            answer = requests.get(base.rstrip("/") + "/health", timeout=10)
            answers[name] = answer.json() if answer.status_code == 200 else f"/health answers {answer.status_code}"
        except requests.RequestException as exc:
            answers[name] = f"no answer at {base} ({exc.__class__.__name__})"
    return answers


def repair(urls: Mapping[str, str], call: Call, report: Report) -> list[dict]:
    """Ask reservations to say again what inventory missed; returns its answer per reservation."""
    ids = report.to_reannounce()
    if not ids:
        return []
    return call(urls["reservations"], "POST", "/audit/reannounce", json={"reservation_ids": ids}).json()
