"""The wheel carries every file the services read at run time, and installs are pinned (constraints.txt)."""

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"


def data_files() -> set[str]:
    """Every file under services/ that is not Python source or bytecode: config, migrations' template, templates."""
    return {str(p.relative_to(ROOT)) for p in (ROOT / "services").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc", ".pth") and "__pycache__" not in p.parts}


def python_files() -> set[str]:
    return {str(p.relative_to(ROOT)) for p in (ROOT / "services").rglob("*.py") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: a build in the work tree leaves build/ and *.egg-info behind.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "services"), str(src / "services")], check=True)
    for cache in (src / "services").rglob("__pycache__"):
        subprocess.run(["rm", "-rf", str(cache)], check=True)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "--disable-pip-version-check", "-w", str(out), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [built] = out.glob("drive-*.whl")
    with zipfile.ZipFile(built) as archive:
        return set(archive.namelist())


@pytest.mark.time_limit(300)
def test_the_wheel_carries_the_notification_templates(wheel):
    templates = {f for f in data_files() if f.endswith(".j2")}
    assert len(templates) >= 44  # 11 messages × 2 channels × 2 languages, when this was written
    assert templates <= wheel, sorted(templates - wheel)[:5]


@pytest.mark.time_limit(300)
def test_the_wheel_carries_every_data_file_and_module(wheel):
    missing = (data_files() | python_files()) - wheel
    assert "drive-warnings.pth" in wheel  # at the wheel's root: site-packages reads it before any import
    assert not missing, sorted(missing)[:10]  # e.g. migrations/versions: no __init__.py, a namespace package


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_constraints_pin_every_dependency_exactly():
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not an exact pin"
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    unpinned = {_name(r) for r in wanted} - set(pins)
    assert not unpinned, f"not in constraints.txt: {sorted(unpinned)} — regenerate it: make constraints"


def test_make_and_the_image_install_from_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt -e '.[test,charts]'" in makefile
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert re.search(r"^COPY pyproject.toml constraints.txt", dockerfile, re.M)
    assert "-c constraints.txt" in dockerfile
    # Dependencies before the code: a change of code does not reinstall them.
    assert dockerfile.index("-c constraints.txt") < dockerfile.index("COPY services") < dockerfile.index("--no-deps")
