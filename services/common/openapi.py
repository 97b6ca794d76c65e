"""The OpenAPI 3 document of a service, generated from its routes and their marshmallow schemas."""

import re
from collections.abc import Iterable, Mapping
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow.fields import Field

from services.common.http import Route

_PATH_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
ERRORS = {"400": "invalid input", "401": "no or bad token", "403": "role or card not allowed",
          "404": "not found", "409": "not in a state that allows this"}
BODY_ERRORS = {"413": "body over the route's limit", "415": "body not in the media type documented here"}


def _content(spec_schema: Any) -> dict:
    return {"application/json": {"schema": spec_schema}}


def build_openapi(title: str, routes: Iterable[Route], version: str = "1.0.0",
                  path_ids: Mapping[str, Field] | None = None) -> dict[str, Any]:
    """`path_ids`: the fields that check the path's ids (by name), documented as their schema."""
    plugin = MarshmallowPlugin()
    spec = APISpec(title=title, version=version, openapi_version="3.0.3", plugins=[plugin])
    converter = plugin.converter
    assert converter is not None, "APISpec initialises its plugins"
    path_ids = path_ids or {}
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", {"type": "object", "required": ["error", "message"], "properties": {
        "error": {"type": "string"}, "message": {"type": "string"},
        "fields": {"type": "object"}, "details": {"type": "object"}}})
    paths: dict[str, dict[str, Any]] = {}
    for r in sorted(routes, key=lambda r: (r.url, r.method)):
        path = _PATH_PARAM.sub(r"{\1}", r.url)
        op: dict[str, Any] = {"summary": r.summary or r.method_name.replace("_", " "),
                              "operationId": r.method_name, "responses": {}}
        params = [{"in": "path", "name": n, "required": True,
                   "schema": converter.field2property(path_ids[n]) if n in path_ids else {"type": "string"}}
                  for n in _PATH_PARAM.findall(r.url)]
        if r.query_schema is not None:
            params.append({"in": "query", "schema": r.query_schema})
        if params:
            op["parameters"] = params
        if r.body_schema is not None:
            op["requestBody"] = {"required": not r.optional_body, "content": _content(r.body_schema)}
        elif r.raw_body:
            op["requestBody"] = {"required": True, "content": {r.raw_body: {"schema": {"type": "string"}}}}
        ok: dict[str, Any] = {"description": "success"}
        if r.response_schema is not None:
            ok["content"] = _content(r.response_schema)
        elif r.produces != "application/json":
            ok["content"] = {r.produces: {"schema": {"type": "string"}}}
        op["responses"][str(r.status)] = ok
        if r.roles is not None:
            op["security"] = [{"bearer": []}]
            op["description"] = f"Roles: {', '.join(r.roles)}."
            for code, text in ERRORS.items():
                op["responses"][code] = dict(ERROR, description=text)
        if r.body_schema is not None or r.raw_body:
            for code, text in BODY_ERRORS.items():
                op["responses"][code] = dict(ERROR, description=text)
        for method in r.method.split(","):
            paths.setdefault(path, {})[method.lower()] = op
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
