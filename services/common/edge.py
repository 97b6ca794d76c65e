"""What the HTTP edge refuses before any rule runs: bodies over a route's limit, bodies in the wrong media type
or not UTF-8, JSON nested too deep, and text no database can store (a NUL, a lone surrogate) in a path, a query
or a body. Each refusal names the field and where it was (`path`, `query`, `body`)."""

import io
import json
from typing import Any
from urllib.parse import unquote_plus

from services.common.errors import Invalid, TooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 256 * 1024  # a route's default: Drive's JSON bodies are a few hundred bytes
MAX_JSON_DEPTH = 32  # arrays and objects within one another; Drive's bodies need 4
_READ_CHUNK = 64 * 1024


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to exceed `limit`: by its Content-Length before a
    byte is read, or, sent in chunks, once `limit` bytes have come. The body read is put back into `environ`
    so that werkzeug's request reads it as usual (chunked bodies included)."""
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH") or ""
    chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    if declared.isdigit() and int(declared) > limit:
        _too_large(environ, limit)
    if chunked:
        parts, size = [], 0
        while part := stream.read(_READ_CHUNK):
            size += len(part)
            if size > limit:
                _too_large(environ, limit)
            parts.append(part)
        data = b"".join(parts)
    else:
        data = stream.read(int(declared)) if declared.isdigit() else b""
    environ.update({"wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data)), "wsgi.input_terminated": True})
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return data


def _too_large(environ: dict[str, Any], limit: int) -> None:
    # The rest of the body is never read: the connection closes once the answer is sent (see http.DriveProtocol).
    environ.get("drive.close_connection", lambda: None)()
    raise TooLarge(f"the body exceeds this route's limit of {limit} bytes", limit=limit)


def require_media_type(mimetype: str, params: dict[str, str], expected: str) -> None:
    if mimetype != expected:
        raise UnsupportedMediaType(f"send the body as {expected}, not {mimetype or 'without a Content-Type'}",
                                   expected=expected)
    charset = params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"send the body in UTF-8, not {charset}", expected=f"{expected}; charset=utf-8")


def utf8(data: bytes, field: str = "(the body)", location: str = "body") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"{location} {field} is not valid UTF-8 (byte {exc.start})", field=field,
                      location=location) from exc


def check_text(value: str, field: str, location: str) -> None:
    """PostgreSQL stores neither a NUL nor a lone surrogate (psycopg2 raises before sending the query)."""
    if "\x00" in value:
        raise Invalid(f"{location} field {field} holds a NUL character (U+0000), which is not allowed",
                      field=field, location=location)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Invalid(f"{location} field {field} holds a lone surrogate (U+{ord(value[exc.start]):04X})",
                      field=field, location=location) from exc


def check_path(raw_path: str, values: dict[str, Any]) -> None:
    """`raw_path` is the WSGI PATH_INFO (percent-decoded bytes as latin-1): it must be UTF-8."""
    for name, value in values.items():
        if isinstance(value, str):
            check_text(value, name, "path")
    utf8(raw_path.encode("latin-1"), "(the path)", "path")


def check_query(query_string: str) -> None:
    for pair in filter(None, query_string.split("&")):
        raw_name, _, raw_value = pair.partition("=")
        name = _unquote(raw_name, "(a name)")
        check_text(name, name, "query")
        check_text(_unquote(raw_value, name), name, "query")


def _unquote(raw: str, field: str) -> str:
    try:
        return unquote_plus(raw, errors="strict")
    except UnicodeDecodeError as exc:
        raise Invalid(f"query field {field} is not valid UTF-8", field=field, location="query") from exc


def parse_json(text: str) -> Any:
    """JSON no deeper than MAX_JSON_DEPTH, whose strings (keys included) a database can store."""
    try:
        document = json.loads(text)
    except RecursionError as exc:  # raised by json itself, a thousand levels down
        raise Invalid(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise Invalid(f"malformed JSON: {exc}") from exc
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:  # a loop, not recursion: depth is what is being checked
        value, field, depth = stack.pop()
        if isinstance(value, str):
            check_text(value, field or "(the body)", "body")
            continue
        if isinstance(value, dict | list):
            if depth == MAX_JSON_DEPTH:
                raise Invalid(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                name = f"{field}[{key}]" if isinstance(key, int) else f"{field}.{key}" if field else key
                if isinstance(key, str):
                    check_text(key, name, "body")
                stack.append((item, name, depth + 1))
    return document
