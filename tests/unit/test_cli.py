"""`drive` as people use it: its version, its exit codes, its tokens, its tables piped at 80 columns, `--json`
on every bibliobus command, and how `drive up` stops its children. Nothing here needs a broker: the services
"do not answer" at a port nothing listens on."""

import signal
import subprocess
import sys
import time
from importlib.metadata import version

import jwt
import pytest
from rich.console import Console
from typer.main import get_command
from typer.testing import CliRunner

from services import cli
from services.common import api_client
from services.common.api_client import REFUSED, UNREACHABLE

NOWHERE = "http://127.0.0.1:9"  # the discard port: connection refused
runner = CliRunner()


def drive(*args: str, **env: str):
    return runner.invoke(cli.app, list(args), env={"COLUMNS": "80", **env})


def test_drive_version_is_the_package_version():
    result = drive("--version")
    assert result.exit_code == 0 and result.output.strip() == f"drive {version('drive')}"


def test_the_exit_codes_are_documented_once_in_drive_help():
    shown = drive("--help").output
    for code, word in (("0", "done"), ("1", "a finding"), ("2", "refused"), ("3", "unreachable")):
        assert f"{code}  {word}" in shown, shown


@pytest.mark.parametrize("args", [
    ["stats", "--url", NOWHERE],
    ["bibliobus", "stops"],
    ["bibliobus", "stops", "--json"],
    ["bibliobus", "history", "lux"],
    ["bibliobus", "manifest", "lux", "--json"],
    ["bibliobus", "enable", "lux", "--reason", "essai"],
    ["bibliobus", "thresholds"],
])
def test_a_service_that_does_not_answer_is_exit_code_3_everywhere(args):
    result = drive(*args, BIBLIOBUS_URL=NOWHERE)
    assert result.exit_code == UNREACHABLE, result.output
    assert "does not answer" in result.output and "Traceback" not in result.output


def test_a_usage_error_is_exit_code_2():
    assert drive("token", "--role", "librarian").exit_code == REFUSED
    assert drive("token", "--role", "patron").exit_code == REFUSED
    assert drive("stats", "--no-such-option").exit_code == REFUSED


def test_every_bibliobus_command_takes_json():
    group = get_command(cli.app).commands["bibliobus"]
    missing = [name for name, command in group.commands.items()
               if "--json" not in [opt for param in command.params for opt in param.opts]]
    assert missing == []


def test_drive_token_help_says_how_to_mint_a_staff_token_for_a_named_person():
    shown = drive("token", "--help").output
    assert '--name "Camille Martin"' in shown and "--role staff" in shown
    assert max(map(len, shown.splitlines())) <= 80


def test_drive_token_for_a_named_person_signed_with_jwt_secret_from_the_environment():
    secret = "a-real-secret-of-at-least-thirty-two-bytes"
    result = drive("token", "--role", "staff", "--name", "Camille Martin", JWT_SECRET=secret)
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), secret, algorithms=["HS256"], audience="drive")
    assert (claims["sub"], claims["role"]) == ("Camille Martin", "staff")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(result.output.strip(), "another-secret-of-at-least-thirty-two-b", algorithms=["HS256"],
                   audience="drive")


def test_tables_keep_ids_whole_at_80_columns_when_piped():
    ids = ["champforgeuil", "saint-jean-des-vignes", "3f2c8a90-5b1e-4d7a-9c43-0e6f1b2a7d58"]
    rows = [(stop, f"{stop.title()} — salle des fêtes polyvalente de la commune", "open (forced on)", 12,
             "Thu 03 Dec 10:30") for stop in ids]
    console = Console(width=80, file=None, force_terminal=False, color_system=None, record=True)
    with console.capture() as captured:
        console.print(api_client.table("stops", ["stop", "name", "state", "demand", "next visit"], rows,
                                       keep=("stop",)))
    out = captured.get()
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80, out
    for stop in ids:
        assert any(stop in line for line in lines), out  # whole, on one line: no "champforg…"
    assert "…" not in out


def test_listen_address_is_the_one_the_service_will_use(monkeypatch):
    assert cli.listen_address("reservations", {}) == ("127.0.0.1", 8001)  # config.yaml's default, 0.0.0.0
    assert cli.listen_address("bibliobus", {"BIBLIOBUS_ADDRESS": "0.0.0.0:9004"}) == ("127.0.0.1", 9004)
    assert cli.listen_address("inventory", {"INVENTORY_ADDRESS": "10.0.0.5:7002"}) == ("10.0.0.5", 7002)


def _child(ignores_sigterm: bool) -> subprocess.Popen:
    code = ("import signal, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignores_sigterm else "")
            + "print('ready', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_drive_up_sends_one_sigterm_and_kills_who_outlives_the_grace_period(monkeypatch):
    stop = cli._Stop.__new__(cli._Stop)  # without installing its signal handlers in the test process
    stop.asked = 1
    polite, stubborn = _child(ignores_sigterm=False), _child(ignores_sigterm=True)
    started = time.monotonic()
    cli.stop_children({"polite": polite, "stubborn": stubborn}, stop, grace=1.5)
    took = time.monotonic() - started
    assert polite.returncode == -signal.SIGTERM and stubborn.returncode == -signal.SIGKILL
    assert 1.5 <= took < 5


def test_board_link_is_the_web_url_with_a_staff_token_in_its_fragment(monkeypatch):
    monkeypatch.setenv("WEB_URL", "https://drive.bibliotheque.test/")
    answer = runner.invoke(cli.app, ["board-link", "--pickup-point", "central-adult", "--hours", "2"])
    assert answer.exit_code == 0, answer.output
    page, _, token = answer.output.strip().partition("#")
    assert page == "https://drive.bibliotheque.test/boards/central-adult"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["role"] == "staff" and claims["exp"] - claims["iat"] == 2 * 3600
    assert runner.invoke(cli.app, ["board-link", "--pickup-point", "a/b"]).exit_code == REFUSED
