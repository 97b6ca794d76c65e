"""How `drive` commands reach a service's HTTP API: a bearer token (DRIVE_TOKEN, else one minted with the
embedded default's shared secret), and a plain one-line error instead of a traceback when the service does not
answer or refuses."""

import os
from typing import Any

import requests
import typer
from rich.console import Console

err = Console(stderr=True)


def call(base: str, method: str, path: str, *, role: str, unreachable_hint: str, refused_hint: str = "",
         refused_exit: int = 1, **kwargs: Any) -> requests.Response:
    from services.common.auth import issue_token

    base = base.rstrip("/")
    token = os.environ.get("DRIVE_TOKEN") or issue_token({}, role, f"{role}-cli")
    try:
        answer = requests.request(method, base + path, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                                  **kwargs)
    except requests.ConnectionError:
        err.print(f"[bold red]error:[/] the service does not answer at {base} — {unreachable_hint}")
        raise typer.Exit(2) from None
    if answer.status_code >= 400:
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        details = body.get("fields") or body.get("details") or ""
        hint = f" — {refused_hint}" if refused_hint else ""
        err.print(f"[bold red]refused ({answer.status_code}):[/] {body.get('message', answer.text)} {details}{hint}")
        raise typer.Exit(refused_exit)
    return answer
