"""Configuration has one source: each setting declared once, with its default, in a settings table (or, for what
nameko itself reads, in config.yaml); the code reads it without a default of its own; docs/configuration.md is
generated from the tables and the YAML, and is current."""

import ast
from pathlib import Path

import pytest

from services import configuration
from services.common.settings import COMMON, DECLARED, Setting, Settings, setting

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
REGENERATE = "regenerate it: python -m services.configuration > docs/configuration.md"
# Keys of config.yaml that nameko reads itself (AMQP_URI is declared too: the CLI and tools read it without nameko).
NAMEKO_OWN = {"AMQP_URI", "WEB_SERVER_ADDRESS", "DB_URL", "level"}


def reads_of_configuration() -> list[tuple[str, int, str, int]]:
    """Every `setting(config, "KEY", …)` and `timer("KEY", …)` in services/ with a literal key: where, the key,
    and how many arguments the call passes after the key."""
    found = []
    for path in sorted((ROOT / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            position = {"setting": 1, "timer": 0}.get(name or "")
            if position is None or len(node.args) <= position:
                continue
            key = node.args[position]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                extra = len(node.args) - position - 1 + len(node.keywords)
                found.append((str(path.relative_to(ROOT)), node.lineno, key.value, extra))
    return found


def test_the_document_is_current():
    assert DOC.read_text() == configuration.build_markdown(), f"docs/configuration.md is stale: {REGENERATE}"


def test_every_setting_read_is_declared_and_read_without_a_default_of_its_own():
    reads = reads_of_configuration()
    assert len(reads) > 50, "the scan found the reads"
    undeclared = [f"{path}:{line} {key}" for path, line, key, _ in reads if key not in DECLARED]
    assert undeclared == [], "declare these in a settings table (services/<service>/policy.py SETTINGS)"
    defaults = [f"{path}:{line} {key}" for path, line, key, extra in reads if extra]
    assert defaults == [], "the default and the type belong to the declaration, not to the call"


@pytest.mark.parametrize("service", configuration.SERVICES)
def test_config_yaml_holds_only_what_nameko_reads(service):
    for key, _variable, default in configuration.yaml_variables(service):
        assert key in NAMEKO_OWN, f"{key} is declared in a settings table: drop it from {service}/config.yaml"
        if key in DECLARED:
            assert default == DECLARED[key].default, f"{service}/config.yaml's default of {key} drifted"


def test_every_declared_setting_is_documented_once():
    keys = [s.key for table in configuration.TABLES for s in table]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(DECLARED)
    doc = DOC.read_text()
    assert all(doc.count(f"| `{key}` |") == 1 for key in keys)


def test_a_setting_reads_config_then_environment_then_its_declared_default(monkeypatch):
    Settings("test", Setting("DRIVE_TEST_ONLY_SECONDS", 1.5, float, "a setting of this test"))
    try:
        assert setting({}, "DRIVE_TEST_ONLY_SECONDS") == 1.5
        monkeypatch.setenv("DRIVE_TEST_ONLY_SECONDS", "2")
        assert setting({}, "DRIVE_TEST_ONLY_SECONDS") == 2.0
        assert setting({"DRIVE_TEST_ONLY_SECONDS": 3}, "DRIVE_TEST_ONLY_SECONDS") == 3.0
        monkeypatch.setenv("DRIVE_TEST_ONLY_SECONDS", "")
        assert setting({}, "DRIVE_TEST_ONLY_SECONDS") == 1.5, "empty is unset"
    finally:
        del DECLARED["DRIVE_TEST_ONLY_SECONDS"]


def test_a_key_declared_twice_differently_is_refused():
    jwt = next(s for s in COMMON if s.key == "JWT_ISSUER")
    Settings("again", jwt)  # the same declaration twice is harmless (a module imported twice)
    with pytest.raises(ValueError, match="JWT_ISSUER"):
        Settings("other", Setting("JWT_ISSUER", "elsewhere", str, "another default"))
