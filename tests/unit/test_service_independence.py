"""No service imports another: each speaks to the others through events and HTTP only, and what they share
(the event catalogue, the visit contract, the plumbing) lives outside every service, under `services/`."""

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
# A service is a package with its entrypoints in service.py; `common` holds the base class they share.
NAMES = sorted(p.parent.name for p in SERVICES.glob("*/service.py") if p.parent.name != "common")


def _imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _services_imported(path: Path) -> set[str]:
    return {name.split(".")[1] for name in _imported(path)
            if name.startswith("services.") and name.split(".")[1] in NAMES}


def test_the_services_are_found():
    assert NAMES == ["bibliobus", "inventory", "notifications", "reservations", "web"]


def test_no_service_imports_another():
    crossings = [f"{path.relative_to(SERVICES.parent)} imports services.{other}"
                 for name in NAMES for path in sorted((SERVICES / name).rglob("*.py"))
                 for other in sorted(_services_imported(path) - {name})]
    assert crossings == []


def test_what_services_share_imports_no_service():
    shared = [*sorted((SERVICES / "common").rglob("*.py")), SERVICES / "events.py", SERVICES / "visits.py"]
    assert [f"{path.name} imports services.{other}" for path in shared
            for other in sorted(_services_imported(path))] == []
