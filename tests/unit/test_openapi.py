"""The OpenAPI document: valid 3.1, made from one catalogue that is exactly the app's routes and scopes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from devhost.hostjson import route_prefix
from functions.catalogue import OPERATIONS, document
from shared.config import REPOSITORY_ROOT
from shared.openapi import GUARD_ERRORS
from shared.security.cors import ALLOWED_METHODS

REGISTERED_ROUTES = """
import json, sys
from pathlib import Path
from devhost.registry import load
routes = [
    [method, function.route, getattr(function.handler, "required_scope", None)]
    for function in load(Path(sys.argv[1])).http
    for method in function.methods
]
print(json.dumps(routes))
"""


CORS_PREFLIGHT = ("OPTIONS", "/api/{*path}")
"""Not an operation: the browser's CORS protocol, answered on every path (an OpenAPI path cannot be a
catch-all); the README documents it."""


@pytest.fixture(scope="module")
def registered() -> dict[tuple[str, str], str | None]:
    """(method, path) → scope of every HTTP function, as the worker indexes the app (in a fresh process:
    an app indexes once per interpreter)."""
    result = subprocess.run(
        [sys.executable, "-c", REGISTERED_ROUTES, str(REPOSITORY_ROOT)],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    prefix = route_prefix()
    routes = {
        (method, f"/{prefix}/{route}"): scope for method, route, scope in json.loads(result.stdout.splitlines()[-1])
    }
    assert routes.pop(CORS_PREFLIGHT) is None
    return routes


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return document().build()


def test_the_catalogue_documents_every_registered_route_and_no_other(
    registered: dict[tuple[str, str], str | None],
) -> None:
    documented = {(operation.method, operation.path) for operation in OPERATIONS}
    assert sorted(documented - registered.keys()) == []
    assert sorted(registered.keys() - documented) == []
    assert len(documented) == len(OPERATIONS)


def test_each_route_needs_the_scope_the_catalogue_says(registered: dict[tuple[str, str], str | None]) -> None:
    documented = {(op.method, op.path): None if op.scope is None else op.scope.value for op in OPERATIONS}
    assert documented == registered


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.1.0"
    validate(spec, cls=OpenAPIV31SpecValidator)


def test_guarded_operations_name_both_schemes_with_their_scope_and_anonymous_ones_none(spec: dict[str, Any]) -> None:
    for operation in OPERATIONS:
        documented = spec["paths"][operation.path][operation.method.lower()]
        if operation.scope is None:
            assert documented["security"] == []
        else:
            scopes = [operation.scope.value]
            assert documented["security"] == [{"ApiKey": scopes}, {"Bearer": scopes}]
            assert {str(status) for status in GUARD_ERRORS} <= documented["responses"].keys()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "`vao_<id>_<secret>`.",
    }
    assert (schemes["Bearer"]["scheme"], schemes["Bearer"]["bearerFormat"]) == ("bearer", "JWT")


def test_every_error_answer_is_the_shared_error_schema(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    assert spec["components"]["schemas"]["ErrorDetail"]["required"] == ["code", "message"]
    for operation in OPERATIONS:
        responses = spec["paths"][operation.path][operation.method.lower()]["responses"]
        for status in operation.error_statuses():
            if status not in operation.answers:
                schema = responses[str(status)]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}


def test_schemas_are_the_models_own_with_references_into_components(spec: dict[str, Any]) -> None:
    text = json.dumps(spec)
    assert "#/$defs/" not in text
    schemas = spec["components"]["schemas"]
    for reference in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert reference in schemas
    started = schemas["Started"]
    assert set(started["required"]) == {"conversation_id", "reply", "replayed"}
    assert started["properties"]["reply"] == {
        "$ref": "#/components/schemas/Reply",
        "description": "The agent's greeting.",
    }


def test_query_parameters_come_from_the_query_models_without_their_null(spec: dict[str, Any]) -> None:
    listing = {p["name"]: p for p in spec["paths"]["/api/conversations"]["get"]["parameters"]}
    assert set(listing) == {"agent", "status", "outcome", "since", "until", "limit", "cursor"}
    assert listing["limit"]["schema"] | {} == {
        "default": 50,
        "maximum": 200,
        "minimum": 1,
        "title": "Limit",
        "type": "integer",
    }
    assert listing["status"]["schema"]["enum"] == ["active", "ending", "completed"]
    assert listing["outcome"]["schema"] == {"$ref": "#/components/schemas/Outcome"}
    assert not any(parameter["required"] for parameter in listing.values())
    usage = {p["name"]: p for p in spec["paths"]["/api/usage"]["get"]["parameters"]}
    assert {name: p["required"] for name, p in usage.items()} == {"from": True, "to": True}
    assert usage["from"]["schema"]["format"] == "date"


def test_path_parameters_are_declared_for_every_template(spec: dict[str, Any]) -> None:
    for operation in OPERATIONS:
        parameters = spec["paths"][operation.path][operation.method.lower()]["parameters"]
        assert [p["name"] for p in parameters if p["in"] == "path"] == operation.path_parameters()
    turns = spec["paths"]["/api/conversations/{conversation_id}/turns"]["post"]["requestBody"]["content"]
    assert set(turns) == {"application/json", "audio/wav"}


WEBHOOK_HANDSHAKES = {("OPTIONS", "/api/realtime/events")}
"""Not called by browsers: Web PubSub's abuse-protection handshake, which happens to use OPTIONS."""


def test_cors_preflights_allow_every_method_a_route_takes() -> None:
    methods = {op.method for op in OPERATIONS if (op.method, op.path) not in WEBHOOK_HANDSHAKES}
    assert methods <= set(ALLOWED_METHODS)
