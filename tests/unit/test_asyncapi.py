"""docs/asyncapi.yaml: valid AsyncAPI 3.0.0, generated from the event catalogue, and complete.

tests/data/asyncapi-3.0.0.schema.json is `schemas/3.0.0-without-$id.json` from the npm package
`@asyncapi/specs` 6.11.1 (Apache-2.0; `npm pack @asyncapi/specs`), the official JSON Schema of AsyncAPI 3.0.0.
"""

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services.asyncapi import build_asyncapi
from services.common.envelope import REGISTRY, EventRegistry

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
SCHEMA = ROOT / "tests" / "data" / "asyncapi-3.0.0.schema.json"
REGENERATE = "regenerate it: python -m services.asyncapi > docs/asyncapi.yaml"


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def documented_events(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(source, type) of every event the document lets a staff app receive, read back from its channels."""
    found = set()
    for op in doc["operations"].values():
        assert op["action"] == "receive"
        channel = _resolve(doc, op["channel"]["$ref"])
        source = channel["bindings"]["amqp"]["exchange"]["name"].removesuffix(".events")
        for ref in op["messages"]:
            payload = _resolve(doc, _resolve(doc, ref["$ref"])["$ref"])["payload"]["properties"]
            assert payload["source"]["const"] == source
            assert payload["type"]["const"] == channel["address"]
            found.add((source, channel["address"]))
    return found


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def registered() -> set[tuple[str, str]]:
    return {(kind.source, kind.type) for kind in REGISTRY}


# (a) valid against the official schema


def test_committed_document_is_valid_asyncapi_3(committed, validator):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(committed)]
    assert errors == []


def test_the_official_schema_does_reject_a_broken_document(committed, validator):
    broken = copy.deepcopy(committed)
    next(iter(broken["operations"].values()))["action"] = "subscribe"  # AsyncAPI 2 wording
    next(iter(broken["channels"].values()))["bindings"]["amqp"]["exchange"]["type"] = "queue"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_every_reference_resolves(committed):
    refs = _refs(committed)
    assert refs, "the document uses $refs: finding none means this test reads it wrong"
    for ref in refs:
        assert ref.startswith("#/"), ref
        _resolve(committed, ref)  # KeyError names the dangling part


# (b) the committed file is what the code builds, and covers the catalogue


def test_committed_document_equals_what_the_catalogue_builds(committed):
    assert committed == build_asyncapi(), f"docs/asyncapi.yaml is stale: {REGENERATE}"


def test_documented_events_are_exactly_the_registered_ones(committed):
    assert len(registered()) >= 10  # the catalogue was imported, not an empty registry
    assert documented_events(committed) == registered(), REGENERATE


def test_a_published_envelope_validates_against_its_message_payload(committed):
    event = REGISTRY.build("inventory", "item_returned", {
        "barcode": "B1", "title_id": "T1", "reservation_id": None, "site": "central",
        "returned_at": datetime.now(UTC), "quarantine_until": datetime.now(UTC) + timedelta(days=3)})
    message = json.loads(json.dumps(event.to_message()))  # as it travels: JSON
    # Draft 7 ignores siblings of a root $ref but resolves it against the root, where `components` sits.
    schema = {"$ref": "#/components/messages/inventory.item_returned/payload",
              "components": committed["components"]}
    jsonschema.validate(message, schema, cls=jsonschema.Draft7Validator)
    del message["data"]["barcode"]
    with pytest.raises(jsonschema.ValidationError, match="barcode"):
        jsonschema.validate(message, schema, cls=jsonschema.Draft7Validator)


# (c) a missing event is noticed


def test_an_event_missing_from_the_document_is_detected(committed):
    doc = copy.deepcopy(committed)
    key = next(iter(doc["channels"]))
    del doc["channels"][key]
    doc["operations"] = {k: op for k, op in doc["operations"].items() if op["channel"]["$ref"] != f"#/channels/{key}"}
    assert documented_events(doc) != registered()


def test_a_newly_registered_event_makes_the_committed_document_stale(committed):
    registry = EventRegistry()
    for kind in REGISTRY:
        registry.register(kind.source, kind.type, kind.schema, kind.summary, kind.version)
    first = next(iter(REGISTRY))
    registry.register("bibliobus", "stop_enabled", first.schema, "A stop opened for mobile drive.")
    doc = build_asyncapi(registry)
    assert ("bibliobus", "stop_enabled") in documented_events(doc)
    assert doc != committed
