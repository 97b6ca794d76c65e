"""The shared bounded fields: what they accept, what they refuse, and what the OpenAPI documents say of them."""

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, ValidationError

from services.common.fields import Card, Day, Flag, Id, Int, Moment

Probe = Schema.from_dict({"day": Day(), "at": Moment(), "n": Int(0, 10), "q": Int(0, 10, text=True), "id": Id(36),
                          "card": Card(), "flag": Flag()})


@pytest.mark.parametrize("data", [
    {"day": "0001-01-01"}, {"day": "9999-12-31"}, {"day": "1999-12-31"}, {"day": "2100-01-01"},
    {"at": "0001-01-01T00:00:00Z"}, {"at": "9999-12-31T23:00:00-05:00"}, {"at": "2030-01-01T10:00:00"},
    {"n": 1.5}, {"n": 1.0}, {"n": "2"}, {"n": True}, {"n": 11}, {"n": -1}, {"n": 2**64},
    {"q": "1.5"}, {"q": str(2**64)}, {"q": "2e1"}, {"id": "x" * 37}, {"id": ""}, {"card": "7" * 41},
    {"flag": 0}, {"flag": 1}, {"flag": "true"}, {"flag": "off"},
])
def test_refused_naming_the_field(data):
    with pytest.raises(ValidationError) as refused:
        Probe().load(data)
    assert set(refused.value.messages) == set(data)


def test_accepted_within_bounds():
    loaded = Probe().load({"day": "2099-12-31", "at": "2000-01-01T00:00:00+14:00", "n": 10, "q": "7", "id": "x" * 36,
                           "card": "C-100", "flag": False})
    assert loaded["day"].year == 2099 and loaded["at"].year == 2000 and loaded["n"] == 10 and loaded["q"] == 7
    assert loaded["flag"] is False


def test_the_documents_carry_the_bounds():
    spec = APISpec(title="t", version="1", openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Probe", schema=Probe)
    properties = spec.to_dict()["components"]["schemas"]["Probe"]["properties"]
    assert properties["n"] == {"type": "integer", "minimum": 0, "maximum": 10}
    assert properties["day"]["format"] == "date" and properties["day"]["pattern"].startswith("^20")
    assert properties["at"]["format"] == "date-time" and properties["at"]["pattern"].startswith("^20")
    assert properties["id"]["maxLength"] == 36 and properties["card"]["pattern"] == "^[A-Za-z0-9-]{1,40}$"
