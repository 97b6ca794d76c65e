"""Safe by default: outside `DRIVE_ENV=dev` (the embedded default: `make up`, `drive up`, the test suite), a
service or `drive setup` refuses to start on the secret and passwords anyone can read in this repository.

The rule (`unsafe_settings`) is a plain function of the values; `DeploymentGuard` applies it when nameko builds a
service's container (before anything connects), and `drive setup` calls `refusal` itself. Outside dev:
- JWT_SECRET must not be empty, the embedded default, or shorter than 32 characters (HS256 wants a 256-bit key),
  unless JWT_JWKS_URL is set (tokens are then checked with the identity provider's keys);
- PATRON_LINK_SECRET the same (not empty, not the embedded default, 32 characters at least), JWKS or not: anyone who
  knows it can forge the link of a ready message, for any reservation;
- WEB_SESSION_SECRET (the web service's cookie and CSRF key) the same, in the web service;
- the broker URI must carry a password that is not a well-known default (guest, drive);
- a database URL must be PostgreSQL with a password that is not a well-known default (drive, postgres). SQLite is
  the embedded default's database: one file on one machine, which replicas cannot share and nobody backs up, so
  it is refused outside dev too (run a single machine on SQLite as DRIVE_ENV=dev, knowing it is the demo setup).
"""

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from nameko.extensions import DependencyProvider

from services.common.settings import COMMON, setting

log = logging.getLogger("drive.deployment")

DEV = "dev"
DEV_JWT_SECRET: str = COMMON.default("JWT_SECRET")
DEV_LINK_SECRET: str = COMMON.default("PATRON_LINK_SECRET")
DEV_SESSION_SECRET = "drive-embedded-dev-session-secret-change-me"  # the web service's WEB_SESSION_SECRET default
MIN_SECRET_LENGTH = 32
DEFAULT_BROKER_PASSWORDS = frozenset({"guest", "drive"})
DEFAULT_DATABASE_PASSWORDS = frozenset({"drive", "postgres"})
# Exit status of a refused start: 78 is EX_CONFIG (sysexits.h), "configuration error".
REFUSED_EXIT_CODE = 78
_warned = False


def _password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:  # an unparsable URL: the connection will say so, this rule has nothing to add
        return None
    return None if password is None else unquote(password)


def _database_problem(key: str, url: str) -> str | None:
    scheme = urlsplit(url).scheme
    if scheme.startswith("sqlite"):
        return f"{key} is a SQLite file (the embedded default): set it to a PostgreSQL URL"
    password = _password(url)
    if not password:
        return f"{key} has no password: set the database user's password in the URL"
    if password in DEFAULT_DATABASE_PASSWORDS:
        return f"{key} uses the well-known password {password!r}: set the database user's own password"
    return None


def _secret_problem(key: str, secret: str, dev_secret: str, fix: str) -> str | None:
    if secret == dev_secret:
        return f"{key} is the embedded development secret: {fix}"
    if not secret:
        return f"{key} is empty: {fix}"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"{key} is shorter than {MIN_SECRET_LENGTH} characters: {fix}"
    return None


def unsafe_settings(values: Mapping[str, Any]) -> list[str]:
    """What in these resolved settings must not run outside dev, one short item each (what, then how to fix).

    Reads the keys present: JWT_SECRET (with JWT_JWKS_URL), PATRON_LINK_SECRET, AMQP_URI, DB_URL and every
    `*_DB_URL`, WEB_SESSION_SECRET (None in a service that signs no cookie)."""
    problems = []
    secrets = []
    if "JWT_SECRET" in values and not values.get("JWT_JWKS_URL"):
        secrets.append(("JWT_SECRET", DEV_JWT_SECRET, "set JWT_SECRET to a random secret (openssl rand -hex 32) or "
                                                      "JWT_JWKS_URL"))
    if "PATRON_LINK_SECRET" in values:
        secrets.append(("PATRON_LINK_SECRET", DEV_LINK_SECRET,
                        "set PATRON_LINK_SECRET to a random secret (openssl rand -hex 32)"))
    if values.get("WEB_SESSION_SECRET") is not None:
        secrets.append(("WEB_SESSION_SECRET", DEV_SESSION_SECRET,
                        "set WEB_SESSION_SECRET to a random secret (openssl rand -hex 32)"))
    for key, dev_secret, fix in secrets:
        problem = _secret_problem(key, values.get(key) or "", dev_secret, fix)
        if problem:
            problems.append(problem)
    if "AMQP_URI" in values:
        password = _password(str(values.get("AMQP_URI") or ""))
        if not password:
            problems.append("AMQP_URI has no password: set the broker user's password in the URI")
        elif password in DEFAULT_BROKER_PASSWORDS:
            problems.append(f"AMQP_URI uses the well-known password {password!r}: set the broker user's own password")
    # A service without a database (web) has no DB_URL at all: nothing to check there.
    for key in sorted(k for k in values if (k == "DB_URL" or k.endswith("_DB_URL")) and values[k] is not None):
        problem = _database_problem(key, str(values.get(key) or ""))
        if problem:
            problems.append(problem)
    return problems


def refusal(values: Mapping[str, Any], environment: str | None, who: str) -> str | None:
    """The one line that refuses the start, or None when it may go on (dev, or nothing unsafe)."""
    if environment == DEV:
        return None
    problems = unsafe_settings(values)
    if not problems:
        return None
    return (f"{who} refuses to start (DRIVE_ENV={environment or 'unset'}, not dev): " + "; ".join(problems)
            + " (DRIVE_ENV=dev runs the embedded default, on one machine only)")


def dev_warning(values: Mapping[str, Any]) -> str | None:
    """In dev, the line that says the embedded default's secret or passwords are in use, if they are."""
    if unsafe_settings(values):
        return "DRIVE_ENV=dev: the embedded development secret or default passwords are in use; never expose this"
    return None


def service_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a service runs on, resolved as it reads them (config first, the environment, the default)."""
    return {key: setting(config, key) for key in ("JWT_SECRET", "JWT_JWKS_URL", "PATRON_LINK_SECRET", "AMQP_URI",
                                                  "DB_URL", "WEB_SESSION_SECRET")}


def check_start(values: Mapping[str, Any], environment: str | None, who: str) -> None:
    """Log the one line and exit with REFUSED_EXIT_CODE when the start is refused; warn once in dev."""
    global _warned
    line = refusal(values, environment, who)
    if line is not None:
        log.critical(line)
        for handler in logging.getLogger().handlers:
            handler.flush()
        raise SystemExit(REFUSED_EXIT_CODE)
    warning = dev_warning(values) if environment == DEV else None
    if warning and not _warned:
        _warned = True
        log.warning(warning)


class DeploymentGuard(DependencyProvider):
    """Refuses the start outside dev on an unsafe setting. Checked when the container binds its extensions, before
    any of them connects to anything, so that the refusal is the only line (and no traceback)."""

    def bind(self, container: Any, attr_name: str) -> Any:
        bound = super().bind(container, attr_name)
        config = container.config
        check_start(service_values(config), setting(config, "DRIVE_ENV"), container.service_name)
        return bound


def check_setup(values: Mapping[str, Any]) -> None:
    """`drive setup`'s check (the broker and the four databases it migrates), the same rule as a service's."""
    check_start(values, setting(None, "DRIVE_ENV"), "drive setup")


# --- ordering on Kubernetes: a service's pods wait (initContainer) until the setup Job has done its part ---------


def setup_missing(service: str, db_url: str, config: Mapping[str, Any]) -> list[str]:
    """What `drive setup` has not done yet for this service: its database at the migrations' head, and every
    handler queue of every service declared (the topology is declared last, after all the migrations). A service
    without a database (web) waits for the queues alone."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from kombu import Connection

    from services import DATABASES, service_classes
    from services.common.database import make_engine
    from services.common.messaging import handler_queues
    from services.common.migrate import alembic_config

    missing = []
    if service in DATABASES:
        heads = set(ScriptDirectory.from_config(alembic_config(service, db_url)).get_heads())
        engine = make_engine(db_url, pool_size=1)
        try:
            with engine.connect() as connection:
                current = set(MigrationContext.configure(connection).get_current_heads())
        finally:
            engine.dispose()
        if current != heads:
            missing.append(f"the {service} database is at {sorted(current) or 'no revision'}, not {sorted(heads)}")
    with Connection(setting(config, "AMQP_URI"), connect_timeout=5) as conn:
        for service_cls in service_classes():
            for queue in handler_queues(service_cls, dict(config)):
                try:
                    queue(conn.channel()).queue_declare(passive=True)
                except conn.channel_errors:  # 404: not declared yet (the channel is closed by the broker)
                    missing.append(f"queue {queue.name} is not declared")
                    return missing
    return missing


def wait_for_setup(service: str, timeout: float = 600, pause: float = 3) -> int:
    """`python -m services.common.deployment wait-for-setup SERVICE`: the initContainer of a service's pods."""
    import os
    import sys
    import time

    db_url = os.environ.get(f"{service.upper()}_DB_URL", "")
    deadline = time.monotonic() + timeout
    while True:
        try:
            missing = setup_missing(service, db_url, {})
        except Exception as exc:  # the database or the broker is not up yet: the same wait
            missing = [f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]
        if not missing:
            print(f"{service}: setup has run", file=sys.stderr)
            return 0
        if time.monotonic() > deadline:
            print(f"{service}: setup has not run after {timeout:.0f}s ({missing[0]}): see the drive-setup Job's log",
                  file=sys.stderr)
            return 1
        print(f"{service}: waiting for the setup Job ({missing[0]})", file=sys.stderr)
        time.sleep(pause)


if __name__ == "__main__":
    import argparse

    from services import SERVICE_CLASSES

    parser = argparse.ArgumentParser(prog="python -m services.common.deployment")
    commands = parser.add_subparsers(dest="command", required=True)
    waiting = commands.add_parser("wait-for-setup", help="wait until drive setup has run for SERVICE")
    waiting.add_argument("service", choices=sorted(SERVICE_CLASSES))
    waiting.add_argument("--timeout", type=float, default=600)
    arguments = parser.parse_args()
    raise SystemExit(wait_for_setup(arguments.service, arguments.timeout))
