"""The OpenAPI document is valid and lists exactly the routes and methods the server has."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from jupyter_yolo.app import YoloApp
from jupyter_yolo.jobs.schema import SCHEMAS

from .conftest import fetch_json

METHODS = ("get", "post", "put", "patch", "delete")


def route_template(pattern: str) -> str:
    pattern = pattern.replace("(?P<relative>.+)", "{path}")
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)


def server_routes(app: YoloApp) -> dict[str, set[str]]:
    routes = {}
    for pattern, handler, *_ in app.handlers:
        routes[route_template(pattern)] = {m for m in METHODS if m in vars(handler)}
    return routes


async def test_openapi_matches_the_routes(jp_fetch: Any, jp_serverapp: Any) -> None:
    spec = await fetch_json(jp_fetch, "yolo", "openapi.json")
    validate(spec)
    app = jp_serverapp.extension_manager.extension_apps["jupyter_yolo"]
    (yolo,) = [a for a in app if isinstance(a, YoloApp)]
    documented = {path: set(ops) for path, ops in spec["paths"].items()}
    assert documented == server_routes(yolo)


async def test_openapi_needs_authentication(jp_fetch: Any) -> None:
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("yolo", "openapi.json", headers={"Authorization": "token nope"})
    assert info.value.code == 403


@pytest.mark.parametrize("kind", list(SCHEMAS))
async def test_job_request_schema_follows_the_validator(jp_fetch: Any, kind: str) -> None:
    spec = await fetch_json(jp_fetch, "yolo", "openapi.json")
    schema = spec["components"]["schemas"][f"{kind.capitalize()}JobRequest"]
    assert set(schema["properties"]) == {"kind", *SCHEMAS[kind]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"kind": kind, "surprise": 1}, schema)
