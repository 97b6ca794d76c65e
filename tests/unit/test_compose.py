"""docker-compose.yml and infra/: no Docker engine runs here (and the docker CLI has no compose plugin to render
`docker compose config`), so check statically what would break `up`, interpolating `${…}` as compose does."""

import importlib
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services import configuration
from services.common.deployment import unsafe_settings


class PlainLoader(yaml.SafeLoader):
    """SafeLoader without the `${VAR}` substitution that nameko registers on SafeLoader itself (under
    `nameko test` too): compose interpolates `${VAR:-default}` at `up` time, this test must see the text."""


PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "!env_var"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.load((ROOT / "docker-compose.yml").read_text(), Loader=PlainLoader)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ONE_SHOT = "setup"
SERVICE_DATABASES = {"reservations", "inventory", "notifications", "bibliobus"}
INIT_SCRIPT = ROOT / "infra" / "postgres" / "init-databases.sh"
# nameko's own pattern for `${VAR:default}` (nameko.cli.main.ENV_VAR_MATCHER): the name stops at `:` or `}`.
NAMEKO_ENV_VAR = re.compile(r"\$\{([^{}:\s]+)")


def command(name: str) -> list[str]:
    cmd = SERVICES[name].get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


NAMEKO = sorted(name for name in SERVICES if command(name)[:2] == ["nameko", "run"])


def nameko_target(name: str) -> tuple[Path, str]:
    """(config file, service module) of a `nameko run --config FILE MODULE` command."""
    cmd = command(name)
    config = cmd[cmd.index("--config") + 1]
    modules = [arg for arg in cmd[2:] if not arg.startswith("-") and arg != config]
    assert len(modules) == 1, cmd
    return ROOT / config, modules[0]


def config_vars(config: Path) -> tuple[set[str], dict[str, str]]:
    """Every environment variable the service reads, and config key → the variable it is read from: config.yaml's,
    and its settings tables' (a declared setting is read from the variable of its name)."""
    text = config.read_text()
    declared = {s.key for t in configuration.TABLES if t.scope in ("common", config.parent.name) for s in t}
    top_level = {key: key for key in declared}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        match = NAMEKO_ENV_VAR.search(value)
        if match and not line.startswith((" ", "#")):
            top_level[key] = match.group(1)
    return set(NAMEKO_ENV_VAR.findall(text)) | declared, top_level


def environment(name: str) -> dict[str, str]:
    env = SERVICES[name].get("environment", {})
    assert isinstance(env, dict), f"{name}: write environment as a mapping"
    return env


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_the_stack_has_what_ops_runs():
    assert {"rabbitmq", "postgres", ONE_SHOT, "reservations", "inventory"} <= set(SERVICES)
    assert SERVICES["rabbitmq"]["image"].startswith("rabbitmq:3.13-management")
    assert SERVICES["postgres"]["image"] == "postgres:16"
    from services.cli import SERVICES as RUN_BY_DRIVE_UP

    assert NAMEKO == sorted(RUN_BY_DRIVE_UP)  # compose runs what `drive up` runs


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck_or_is_the_one_shot_setup(name):
    service = SERVICES[name]
    if name == ONE_SHOT:
        assert service.get("restart") == "no" and "healthcheck" not in service and "ports" not in service
        return
    test = service["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    assert service["restart"] == "unless-stopped"


def test_broker_and_database_healthchecks_ask_the_right_tool():
    assert SERVICES["rabbitmq"]["healthcheck"]["test"][1:] == ["rabbitmq-diagnostics", "-q", "ping"]
    assert "pg_isready" in SERVICES["postgres"]["healthcheck"]["test"]


@pytest.mark.parametrize("name", NAMEKO)
def test_nameko_healthcheck_fetches_health_on_the_port_the_service_listens_on(name):
    address = next(v for k, v in environment(name).items() if k.endswith("_ADDRESS"))
    port = port_of(address)
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "healthcheck", "exec")  # the one-liner is valid Python
    assert f"http://127.0.0.1:{port}/health/ready'" in test[3]  # readiness: database and broker answer
    assert any(str(p).endswith(f":{port}") for p in SERVICES[name]["ports"])


def test_every_build_context_and_dockerfile_exists():
    builds = [s["build"] for s in SERVICES.values() if "build" in s]
    assert builds, "the Drive services are built from this repository"
    for build in builds:
        context = ROOT / build["context"]
        assert context.is_dir()
        assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_setup_runs_the_same_image_as_the_services():
    images = {(str(SERVICES[n].get("build")), SERVICES[n].get("image")) for n in [ONE_SHOT, *NAMEKO]}
    assert len(images) == 1
    assert command(ONE_SHOT) == ["drive", "setup"]


def test_dockerfile_copies_files_that_exist_and_bakes_in_no_secret():
    build = SERVICES[ONE_SHOT]["build"]
    context = ROOT / build["context"]
    lines = [line.strip() for line in (context / build["dockerfile"]).read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert re.fullmatch(r"FROM python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", instructions[0])
    assert re.search(r"^EXPOSE 8001 8002 8003 8004 8005$", "\n".join(instructions), re.M)
    copies = [shlex.split(line)[1:] for line in instructions if line.upper().startswith("COPY ")]
    assert copies
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for args in copies:
        for source in [a for a in args if not a.startswith("--")][:-1]:
            assert (context / source).exists(), source
            assert source.strip("./") not in ignored, f"{source} is copied but .dockerignore drops it"
    assert {".venv", ".git", "var"} <= ignored
    user = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert not [line for line in instructions if re.match(r"(ENV|ARG)\b.*(SECRET|PASSWORD|TOKEN)", line)]


@pytest.mark.parametrize("name", NAMEKO)
def test_nameko_command_names_a_config_and_a_service_class_that_exist(name):
    config, target = nameko_target(name)
    assert config.is_file(), config
    # module:Class — the module also holds the shared base class, which nameko must not try to run
    module, _, cls = target.partition(":")
    assert cls, f"{target} must name the service class (module:Class)"
    assert getattr(importlib.import_module(module), cls).name == name


@pytest.mark.parametrize("name", NAMEKO)
def test_environment_matches_what_the_service_config_reads(name):
    config, _ = nameko_target(name)
    if not config.is_file():
        pytest.skip(f"{config.relative_to(ROOT)} not written yet")
    names, read = config_vars(config)
    env = environment(name)
    assert set(env) <= names, f"{name}: set but never read: {set(env) - names}"
    # Without these the service would fall back to its embedded defaults (SQLite, localhost broker, dev key).
    for key in ("AMQP_URI", "WEB_SERVER_ADDRESS", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "PATRON_LINK_SECRET"):
        assert read[key] in env, f"{name}: compose does not set {read[key]} (config {key})"
    if "DB_URL" in read:  # web has no database of its own
        assert env[read["DB_URL"]].startswith("postgresql+psycopg2://")  # psycopg2: green under eventlet
    from services.cli import SERVICES as PORTS

    assert port_of(env[read["WEB_SERVER_ADDRESS"]]) == PORTS[name]


def test_setup_migrates_the_databases_the_services_use():
    setup = environment(ONE_SHOT)
    for name in NAMEKO:
        env = environment(name)
        for key in [k for k in env if k.endswith("_DB_URL")] + ["AMQP_URI"]:
            assert setup.get(key) == env[key], f"setup and {name} disagree on {key}"
    assert {d["condition"] for d in SERVICES[ONE_SHOT]["depends_on"].values()} == {"service_healthy"}
    assert set(SERVICES[ONE_SHOT]["depends_on"]) == {"rabbitmq", "postgres"}


@pytest.mark.parametrize("name", NAMEKO)
def test_services_start_after_setup_succeeded(name):
    assert SERVICES[name]["depends_on"][ONE_SHOT] == {"condition": "service_completed_successfully"}


def test_secrets_are_interpolated_not_written_down():
    for name, service in SERVICES.items():
        for key, value in environment(name).items() if "environment" in service else ():
            if re.search(r"SECRET|PASSWORD|PASS$", key) or urlsplit(str(value)).password:
                assert "${" in str(value), f"{name}.{key} is hard-coded"


def test_init_script_creates_every_service_database():
    script = INIT_SCRIPT.read_text()
    subprocess.run(["bash", "-n", str(INIT_SCRIPT)], check=True)
    created = set(re.search(r'^DATABASES="([^"]*)"', script, re.M).group(1).split())
    assert "CREATE DATABASE" in script
    services = interpolate(SERVICES, {secret: "x" for secret in SECRETS})
    used = {urlsplit(v).path.strip("/") for n in services if "environment" in services[n]
            for k, v in services[n]["environment"].items() if k.endswith("_DB_URL")}
    assert SERVICE_DATABASES <= created
    assert used and used <= created
    mounts = [str(v) for v in SERVICES["postgres"]["volumes"]]
    assert any(m.startswith("./infra/postgres/init-databases.sh:/docker-entrypoint-initdb.d/") for m in mounts)


# --- secrets: required, never defaulted ------------------------------------------------------------------------------

SECRETS = ("JWT_SECRET", "RABBITMQ_PASSWORD", "POSTGRES_PASSWORD", "PATRON_LINK_SECRET", "WEB_SESSION_SECRET")
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
# compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


class Missing(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """A value as compose renders it from `env` (raises Missing with compose's message for a required variable)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset_or_empty = not current if op and op.startswith(":") else current is None
        if op in (":?", "?") and unset_or_empty:
            raise Missing(f"required variable {name} is missing a value: {arg}")
        if op in (":-", "-") and unset_or_empty:
            return arg
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        return current or ""

    return INTERPOLATION.sub(one, value)


def uses_of(name: str) -> list[re.Match]:
    return [m for m in INTERPOLATION.finditer(COMPOSE_TEXT) if m.group("name") == name]


@pytest.mark.parametrize("name", SECRETS)
def test_every_use_of_a_secret_is_required_with_a_message_saying_how_to_set_it(name):
    uses = uses_of(name)
    assert uses, f"{name} is never used"
    for use in uses:
        assert use.group("op") == ":?", f"{use.group(0)} falls back to a default (or to nothing): use ${{{name}:?…}}"
        assert f"set {name}" in use.group("arg"), use.group(0)


def test_no_secret_default_remains_in_compose():
    assert "drive-embedded-dev-secret" not in COMPOSE_TEXT
    for match in INTERPOLATION.finditer(COMPOSE_TEXT):
        if re.search(r"SECRET|PASSWORD|TOKEN", match.group("name")) and match.group("op") in (":-", "-"):
            assert match.group("arg") == "", f"{match.group(0)}: a secret with a default"


def rendered(env: dict[str, str]) -> dict[str, Any]:
    return interpolate(SERVICES, env)


def test_without_secrets_compose_refuses_before_starting_anything():
    with pytest.raises(Missing, match=r"set (" + "|".join(SECRETS) + ")"):
        rendered({})
    for left_out in SECRETS:
        env = {name: "0123456789abcdef0123456789abcdef" for name in SECRETS if name != left_out}
        with pytest.raises(Missing, match=f"set {left_out}"):
            rendered(env)


@pytest.mark.parametrize("name", [ONE_SHOT, *NAMEKO])
def test_with_real_secrets_each_service_passes_the_start_check_and_is_not_dev(name):
    env = {secret: f"real-{secret.lower()}-0123456789abcdef0123456789" for secret in SECRETS}
    service = rendered(env)[name]
    values = dict(service["environment"])
    if name != ONE_SHOT:
        config, _ = nameko_target(name)
        _, read = config_vars(config)
        if "DB_URL" in read:
            values["DB_URL"] = values.pop(read["DB_URL"])
    assert values.get("DRIVE_ENV") == "production"
    assert unsafe_settings(values) == []
    # ...and with the embedded default's secret, the same service would refuse to start.
    assert unsafe_settings({**values, "AMQP_URI": "pyamqp://guest:guest@rabbitmq:5672/"})


def test_the_broker_port_is_not_published_by_default_and_the_override_publishes_it():
    published = [str(p) for p in SERVICES["rabbitmq"].get("ports", [])]
    assert not [p for p in published if p.split(":")[-1] == "5672"]
    assert all(p.startswith("127.0.0.1:") for p in published), published
    override = yaml.load((ROOT / "infra" / "compose" / "publish-broker.yml").read_text(), Loader=PlainLoader)
    assert [p for p in override["services"]["rabbitmq"]["ports"] if str(p).endswith(":5672:5672")]
    assert "infra/compose/publish-broker.yml" in COMPOSE_TEXT  # the compose file says how


def test_the_file_sink_is_a_volume_the_image_lets_its_user_write():
    from services.notifications.policy import SETTINGS

    sink = SETTINGS.default("NOTIFY_FILE_SINK_DIR")
    assert not Path(sink).is_absolute()  # relative to the image's WORKDIR, /app
    assert f"/app/{sink}" in [str(v).split(":")[1] for v in SERVICES["notifications"]["volumes"]]
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert "WORKDIR /app" in dockerfile and f"mkdir -p /app/{sink}" in dockerfile
    assert "chown -R drive /app/var" in dockerfile
