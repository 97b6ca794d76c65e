"""README's "Where each rule lives": every row names module attributes that exist and a unit test file that exists,
so the table cannot drift from the code (one hop to the rule, a second to its test)."""

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (?P<rule>[^|]+) \| (?P<where>[^|]+) \| `(?P<test>test_[a-z_]+\.py)` \|$")


def rows() -> list[dict]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Where each rule lives", 1)[1].split("\n## ", 1)[0]
    return [m.groupdict() for line in section.splitlines() if (m := ROW.match(line))]


def test_every_rule_names_an_attribute_that_exists_and_a_test_that_exists():
    found = rows()
    assert len(found) >= 20
    for row in found:
        spans = re.findall(r"`([^`]+)`", row["where"])
        module_path, _, first = spans[0].partition(".")
        module = importlib.import_module("services." + module_path.replace("/", "."))
        for name in filter(None, [first, *spans[1:]]):
            target = module
            for attr in name.split("."):  # `Calendar.still_due`
                assert hasattr(target, attr), f"{row['rule']}: {module.__name__} has no {name}"
                target = getattr(target, attr)
        assert (ROOT / "tests" / "unit" / row["test"]).exists(), row["test"]
