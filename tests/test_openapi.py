"""The OpenAPI document is valid, lists exactly the server's routes and states its real bounds.

The job request schemas are checked against the validator itself: for every key of every job
kind, generated values (around the bounds, of every JSON type) are accepted by the schema exactly
when the validator accepts them. ``tests/test_api_fuzz.py`` fuzzes a real server with the spec.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from jupyter_yolo.app import YoloApp
from jupyter_yolo.errors import InvalidRequest
from jupyter_yolo.jobs.placement import PLACEMENT_FIELDS
from jupyter_yolo.jobs.schema import SCHEMAS, Param
from jupyter_yolo.openapi import build_spec, job_request_schemas

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
    # plus where it runs (jobs/placement.py): executor, Ray resources, accelerator type
    assert set(schema["properties"]) == {"kind", *SCHEMAS[kind], *PLACEMENT_FIELDS}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"kind": kind, "surprise": 1}, schema)


# ---------------------------------------------------------------------------- the spec's bounds

ERROR_CODES = {"400", "403", "404", "409", "413", "415", "429", "502", "503", "504", "507"}


def test_every_operation_lists_its_error_codes_with_the_error_shape() -> None:
    spec = build_spec()
    validate(spec)
    responses = spec["components"]["responses"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "default" not in codes, (method, path)
            assert {"400", "403", "413"} <= codes, (method, path)
            for code in codes - ERROR_CODES:
                assert code.startswith("2"), (method, path, code)
            for code in codes & ERROR_CODES:
                name = operation["responses"][code]["$ref"].rsplit("/", 1)[1]
                schema = responses[name]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["message", "reason"]
    assert set(error["properties"]) == {"message", "reason", "details"}


def test_the_spec_states_the_servers_own_limits() -> None:
    from jupyter_yolo.handlers.base import MAX_JSON_BODY, MAX_QUERY_BYTES
    from jupyter_yolo.jobs.schema import DEVICE, MAX_CLASSES, MAX_NAME_CHARS

    spec = build_spec(max_upload_bytes=12345)
    upload = spec["paths"]["/yolo/datasets"]["post"]["requestBody"]["content"]
    assert upload["application/zip"]["schema"]["maxLength"] == 12345
    assert str(MAX_JSON_BODY) in spec["components"]["responses"]["PayloadTooLarge"]["description"]
    train = spec["components"]["schemas"]["TrainJobRequest"]["properties"]
    assert train["name"]["maxLength"] == MAX_NAME_CHARS
    assert train["device"]["pattern"] == DEVICE.pattern
    assert train["batch"]["not"] == {"enum": [0]}
    predict = spec["components"]["schemas"]["PredictJobRequest"]["properties"]
    assert predict["classes"]["maxItems"] == MAX_CLASSES
    files = spec["paths"]["/yolo/datasets/{name}/files/{path}"]["get"]
    assert files["parameters"][1]["schema"]["maxLength"] == MAX_QUERY_BYTES


def _ecma(schema: Any) -> Any:
    """The schema with patterns read as JSON Schema (ECMA 262) reads them: '$' is the very end."""
    if isinstance(schema, dict):
        out = {k: _ecma(v) for k, v in schema.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("$"):
            out["pattern"] = pattern[:-1] + r"\Z"
        return out
    if isinstance(schema, list):
        return [_ecma(item) for item in schema]
    return schema


def _values(param: Param) -> st.SearchStrategy[Any]:
    """Values around the row's bounds and of every JSON type, without lone surrogates."""
    edges: list[Any] = [0, -1, 1, 32, 33, 64, 10000, 10001]
    for bound in (param.low, param.high):
        if bound is not None:
            edges += [bound, bound - 1, bound + 1, bound - 1e-9, bound + 1e-9, float(bound)]
    edges += list(param.choices or ())
    text = st.text(st.characters(exclude_categories=("Cs",)), max_size=120)
    return st.one_of(
        st.sampled_from(edges),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
        text,
        st.sampled_from(["cpu", "0", "0,1", "cuda:0", "mps", "npu:0", "cpu\n", " ", "a\tb"]),
        st.lists(st.integers(-2, 10001), max_size=4),
        st.sampled_from([[0] * 1000, [1] * 1001, []]),
        st.lists(text, max_size=2),
    )


ROWS = [(kind, key) for kind, params in SCHEMAS.items() for key in params]


@pytest.mark.parametrize(("kind", "key"), ROWS, ids=[f"{k}.{p}" for k, p in ROWS])
def test_job_request_schema_accepts_exactly_what_the_validator_accepts(kind: str, key: str) -> None:
    """For every key of every job kind: the spec's verdict on a value is the validator's."""
    param = SCHEMAS[kind][key]
    schema = _ecma(job_request_schemas()[f"{kind.capitalize()}JobRequest"]["properties"][key])
    checker = jsonschema.Draft4Validator(schema)

    @given(value=_values(param))
    @settings(max_examples=100, deadline=None, derandomize=True, database=None)
    def agree(value: Any) -> None:
        try:
            param.validate(key, value)
            accepted = True
        except InvalidRequest:
            accepted = False
        assert checker.is_valid(value) == accepted, (kind, key, value)

    agree()


def test_a_huge_integer_for_a_number_is_refused_not_a_crash() -> None:
    with pytest.raises(InvalidRequest):
        SCHEMAS["train"]["lr0"].validate("lr0", 10**400)
