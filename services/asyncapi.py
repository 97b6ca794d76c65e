"""The AsyncAPI 3.0 document of Drive's events, for the staff apps that subscribe to them.

Generated from the event catalogue (`services.events` fills `REGISTRY`), never edited by hand:

    python -m services.asyncapi > docs/asyncapi.yaml

tests/unit/test_asyncapi.py fails when the committed docs/asyncapi.yaml differs from what this builds.
"""

import copy
import sys
from typing import Any

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

import services.events  # noqa: F401  (fills REGISTRY with the catalogue)
from services.common.envelope import REGISTRY, EnvelopeSchema, EventRegistry, EventType, exchange_name

ASYNCAPI_VERSION = "3.0.0"
SERVER = "rabbitmq"
AMQP_BINDING_VERSION = "0.3.0"

DESCRIPTION = """\
Events published by Drive's services. Each service publishes to its own topic exchange `<source>.events`
(durable) with the event type as routing key. To follow an event, declare your own durable queue and bind
it to that exchange with that routing key; acknowledge a message once it is handled.

Every message is a JSON envelope `{id, type, version, occurred_at, source, correlation_id, causation_id,
data}`. `correlation_id` names the chain an event belongs to (the HTTP request's `X-Request-ID`, or the timer
run, it started from) and `causation_id` the event (or request) whose handling published it; both are always
written, and absent from messages older than them. Delivery is
at-least-once: the same `id` may arrive twice, so skip ids you have already handled. Contracts change only
additively (a new field and a bumped `version`), so ignore fields you do not know. Events carry patron ids
(card numbers), never names, e-mails or phone numbers."""


def _key(kind: EventType) -> str:
    return f"{kind.source}.{kind.type}"


def _open(schema: Any) -> Any:
    """Drop `additionalProperties: false` (which apispec derives from marshmallow's `unknown=RAISE`):
    fields are added over time, and a staff app that rejected unknown fields would break at each one."""
    if isinstance(schema, dict):
        return {k: _open(v) for k, v in schema.items() if not (k == "additionalProperties" and v is False)}
    if isinstance(schema, list):
        return [_open(v) for v in schema]
    return schema


def _payload(envelope: dict[str, Any], kind: EventType, data_ref: dict[str, str]) -> dict[str, Any]:
    payload = copy.deepcopy(envelope)
    props = payload["properties"]
    props["type"] = {"type": "string", "const": kind.type}
    props["source"] = {"type": "string", "const": kind.source}
    props["version"]["description"] = f"Version of `data`; this document describes version {kind.version}."
    props["data"] = data_ref
    return payload


def _amqp_channel(kind: EventType) -> dict[str, Any]:
    # As nameko declares it (nameko.standalone.events.get_event_exchange): topic, durable, not auto-deleted.
    exchange = {"name": exchange_name(kind.source), "type": "topic", "durable": True, "autoDelete": False,
                "vhost": "/"}
    return {"amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": AMQP_BINDING_VERSION}}


def build_asyncapi(registry: EventRegistry = REGISTRY) -> dict[str, Any]:
    """One channel (exchange + routing key), one message and one `receive` operation per registered event."""
    plugin = MarshmallowPlugin()
    # OpenAPI 3.1 makes apispec write `allow_none` as JSON Schema (`type: [string, "null"]`), not `nullable`.
    spec = APISpec(title="Drive events", version="1.0.0", openapi_version="3.1.0", plugins=[plugin])
    converter = plugin.converter
    assert converter is not None  # set by APISpec(plugins=...)
    envelope = converter.schema2jsonschema(EnvelopeSchema)

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for kind in registry:
        key = _key(kind)
        # Registers the data schema (and the schemas it nests) under components/schemas; returns a $ref.
        data_ref = converter.resolve_nested_schema(kind.schema)
        messages[key] = {
            "name": kind.type,
            "title": f"{kind.type} (v{kind.version})",
            "summary": kind.summary,
            "contentType": "application/json",
            "payload": _payload(envelope, kind, data_ref),
            "tags": [{"name": kind.source}],
        }
        channels[key] = {
            "address": kind.type,
            "title": f"{exchange_name(kind.source)} / {kind.type}",
            "description": f"Exchange `{exchange_name(kind.source)}`, routing key `{kind.type}`.",
            "servers": [{"$ref": f"#/servers/{SERVER}"}],
            "messages": {kind.type: {"$ref": f"#/components/messages/{key}"}},
            "bindings": _amqp_channel(kind),
        }
        operations[f"receive.{key}"] = {
            "action": "receive",
            "summary": kind.summary,
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{kind.type}"}],
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
        }

    return _open({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": "Drive events", "version": "1.0.0", "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {SERVER: {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0-9-1",
                             "description": "RabbitMQ of the embedded default (compose: rabbitmq:5672)."}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": spec.to_dict().get("components", {}).get("schemas", {})},
    })


class _Dumper(yaml.SafeDumper):
    """Multi-line text as `|` blocks, so the descriptions stay readable in the committed file."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        return self.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _Dumper.represent_str)


def render(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


if __name__ == "__main__":
    sys.stdout.write(render(build_asyncapi()))
