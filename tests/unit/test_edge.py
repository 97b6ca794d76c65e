"""The edge's checks on their own: NUL and lone surrogates named by field, depth, UTF-8, media types, body limits."""

import io

import pytest

from services.common import edge
from services.common.errors import Invalid, TooLarge, UnsupportedMediaType


def refusal(call, *args) -> dict:
    with pytest.raises(Invalid) as caught:
        call(*args)
    return caught.value.details


def test_json_strings_and_keys_are_named_where_they_hold_what_no_database_stores():
    assert edge.parse_json('{"titles": ["a", "b"], "stop": {"visits": [{"weekday": "mon"}]}}')["titles"] == ["a", "b"]
    assert refusal(edge.parse_json, '{"titles": ["a", "b\\u0000"]}') == {"field": "titles[1]", "location": "body"}
    assert refusal(edge.parse_json, '{"s": {"visits": [{"day": "\\u0000"}]}}')["field"] == "s.visits[0].day"
    assert refusal(edge.parse_json, '{"a\\u0000": 1}')["field"] == "a\x00"
    assert refusal(edge.parse_json, '"\\u0000"')["field"] == "(the body)"
    assert refusal(edge.parse_json, '{"name": "\\ud800"}') == {"field": "name", "location": "body"}


@pytest.mark.parametrize("depth, refused", [(edge.MAX_JSON_DEPTH, False), (edge.MAX_JSON_DEPTH + 1, True),
                                            (5000, True)])
def test_json_depth_is_bounded(depth, refused):
    text = "[" * depth + "]" * depth
    if refused:
        with pytest.raises(Invalid, match="nested deeper"):
            edge.parse_json(text)
    else:
        edge.parse_json(text)


def test_paths_and_queries_are_utf8_without_nul():
    edge.check_path("/patrons/C1/contact", {"card": "C1"})
    assert refusal(edge.check_path, "/patrons/C\x00/contact", {"card": "C\x00"}) == {"field": "card",
                                                                                     "location": "path"}
    assert refusal(edge.check_path, "/stops/\xe9", {"stop_id": "\ufffd"})["location"] == "path"  # latin-1 é
    edge.check_query("q=neige+%C3%A9t%C3%A9&limit=5&flag")
    assert refusal(edge.check_query, "q=a%00b") == {"field": "q", "location": "query"}
    assert refusal(edge.check_query, "q=%E9t%E9")["field"] == "q"


def test_media_type_and_charset():
    edge.require_media_type("application/json", {"charset": "UTF-8"}, "application/json")
    for mimetype, params in (("text/plain", {}), ("", {}), ("application/json", {"charset": "latin-1"})):
        with pytest.raises(UnsupportedMediaType):
            edge.require_media_type(mimetype, params, "application/json")
    with pytest.raises(Invalid, match="UTF-8"):
        edge.utf8("Été".encode("latin-1"))


def environ(body: bytes, chunked: bool = False, declared: int | None = None) -> dict:
    headers = {"HTTP_TRANSFER_ENCODING": "chunked"} if chunked else {"CONTENT_LENGTH": str(declared or len(body))}
    return {"wsgi.input": io.BytesIO(body), **headers}


def test_bodies_over_the_limit_are_refused_without_being_read():
    env = environ(b"x" * 10, declared=10_000)
    with pytest.raises(TooLarge):
        edge.read_body(env, 100)
    assert env["wsgi.input"].tell() == 0  # not a byte read
    env = environ(b"x" * 200_000, chunked=True)
    with pytest.raises(TooLarge):
        edge.read_body(env, 100_000)
    assert env["wsgi.input"].tell() < 200_000  # stopped at the limit, not at the end
    env = environ(b'{"a": 1}', chunked=True)
    assert edge.read_body(env, 100) == b'{"a": 1}' and env["CONTENT_LENGTH"] == "8"
    assert env["wsgi.input"].read() == b'{"a": 1}' and "HTTP_TRANSFER_ENCODING" not in env
