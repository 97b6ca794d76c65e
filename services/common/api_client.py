"""What every `drive` command shares: how it reaches a service's HTTP API (a bearer token: DRIVE_TOKEN, else one
minted with JWT_SECRET, the embedded default's when unset), how it fails (one line, no traceback, and the exit
code of that kind of failure), and its tables (readable at 80 columns and when piped: ids are never cut).

Exit codes, the same for every command:
  0  done
  1  a finding: the command ran and reports a disagreement (drive check)
  2  refused: a usage error, or the service refused the request (4xx:
     invalid input, unknown id, no permission)
  3  unreachable: a service, the broker or a database does not answer,
     or it failed (5xx)
"""

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import requests
import typer
from rich import box
from rich.console import Console
from rich.table import Table

DONE, FINDING, REFUSED, UNREACHABLE = 0, 1, 2, 3
EXIT_CODES = __doc__.split("Exit codes, the same for every command:\n", 1)[1]
err = Console(stderr=True)


def fail(message: str, fix: str, code: int = REFUSED) -> NoReturn:
    err.print(f"[bold red]error:[/] {message} — {fix}")
    raise typer.Exit(code)


def call(base: str, method: str, path: str, *, role: str, unreachable_hint: str, refused_hint: str = "",
         refused_exit: int = REFUSED, **kwargs: Any) -> requests.Response:
    from services.common.auth import issue_token

    base = base.rstrip("/")
    token = os.environ.get("DRIVE_TOKEN") or issue_token({}, role, f"{role}-cli")
    try:
        answer = requests.request(method, base + path, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                                  **kwargs)
    except requests.ConnectionError:
        fail(f"the service does not answer at {base}", unreachable_hint, UNREACHABLE)
    except requests.Timeout:
        fail(f"the service at {base} did not answer within 60 s", unreachable_hint, UNREACHABLE)
    if answer.status_code >= 400:
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        details = body.get("fields") or body.get("details") or ""
        hint = f" — {refused_hint}" if refused_hint and answer.status_code < 500 else ""
        word = "refused" if answer.status_code < 500 else "failed"
        err.print(f"[bold red]{word} ({answer.status_code}):[/] {body.get('message', answer.text)} {details}{hint}")
        raise typer.Exit(refused_exit if answer.status_code < 500 else UNREACHABLE)
    return answer


def print_json(value: Any) -> None:
    """`--json`: what the service answered, as it answered it (plus what the command adds)."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, keep: Iterable[str] = (),
          right: Iterable[str] = ()) -> Table:
    """A table that stays whole at 80 columns and when piped: the `keep` columns (ids, names someone will type)
    are as wide as their longest value and never wrap; the others wrap (fold) into what is left."""
    rows = [[str(cell) for cell in row] for row in rows]
    keep, right = set(keep), set(right)
    # Rules under the header only, one space between columns: the width goes to the values.
    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True,
                pad_edge=False)
    for i, column in enumerate(columns):
        if column in keep:
            widest = max([len(column)] + [len(row[i]) for row in rows])
            out.add_column(column, no_wrap=True, min_width=widest)
        else:
            out.add_column(column, overflow="fold", justify="right" if column in right else "left")
    for row in rows:
        out.add_row(*row)
    return out
