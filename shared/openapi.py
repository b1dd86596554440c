"""OpenAPI 3.1 from a catalogue of operations: each says its route, scope, body, query and answers by
pydantic model, and the document's schemas are those models' own JSON Schema (3.1 is JSON Schema
2020-12, so pydantic's output goes in as it is, its `$defs` under `#/components/schemas`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.security.roles import Scope

JSON = "application/json"
REF_TEMPLATE = "#/components/schemas/{model}"
ERROR_SCHEMA = "ErrorResponse"
ERRORS: dict[int, str] = {
    400: "A malformed request, query parameter or cursor; or both X-API-Key and Authorization.",
    401: "No credentials, or ones we refuse (a `WWW-Authenticate` challenge comes with it).",
    403: "The credentials lack the permission this needs.",
    404: "No such resource (or one of another tenant).",
    409: "The resource is in a state that does not allow this.",
    412: "`If-Match` names another version than the current one.",
    413: "The body is larger than allowed.",
    415: "A content type this operation does not take.",
    422: "A well-formed body with invalid fields.",
    502: "The conversation failed before this turn was answered.",
    503: "A service needed to answer (the identity provider) did not.",
    504: "No answer in time; the work goes on (see the message).",
}
GUARD_ERRORS = (400, 401, 403, 503)
"""What `guarded` itself may answer, whatever the handler does."""
PATH_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`vao_<id>_<secret>`."},
    "Bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An Entra External ID / B2C access token (RS256); its roles decide what it may do.",
    },
}


@dataclass(frozen=True)
class Content:
    """One media type of a body or answer: a model's JSON, or raw bytes when `model` is None."""

    media_type: str = JSON
    model: type[BaseModel] | None = None


@dataclass(frozen=True)
class Answer:
    description: str
    content: tuple[Content, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response header name → its description."""


@dataclass(frozen=True)
class Operation:
    method: Literal["GET", "POST", "PUT", "DELETE", "OPTIONS"]
    path: str
    operation_id: str
    summary: str
    tag: str
    scope: Scope | None
    answers: Mapping[int, Answer]
    errors: tuple[int, ...] = ()
    query: type[BaseModel] | None = None
    body: tuple[Content, ...] = ()
    body_required: bool = True
    path_schemas: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """JSON Schema per path parameter; `{"type": "string"}` for any not named."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Optional request header name → its description."""
    description: str = ""

    def path_parameters(self) -> list[str]:
        return PATH_PARAMETER.findall(self.path)

    def error_statuses(self) -> list[int]:
        return sorted(set(self.errors) | (set(GUARD_ERRORS) if self.scope is not None else set()))


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every model the document names, once per direction (pydantic names the two apart if they differ)."""
    from shared.api_models import ErrorResponse

    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorResponse, "serialization"): None}
    for operation in operations:
        for content in operation.body:
            if content.model is not None:
                wanted[(content.model, "validation")] = None
        if operation.query is not None:
            wanted[(operation.query, "validation")] = None
        for answer in operation.answers.values():
            for content in answer.content:
                if content.model is not None:
                    wanted[(content.model, "serialization")] = None
    return list(wanted)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without its `null` branch: an absent parameter is the None, not a value."""
    branches = schema.get("anyOf")
    if branches is None:
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    rest = {key: value for key, value in schema.items() if key not in {"anyOf", "default"}}
    return rest | (kept[0] if len(kept) == 1 else {"anyOf": kept})


class Document:
    """The document for a catalogue; `build()` is the JSON the API serves."""

    def __init__(self, operations: Iterable[Operation], title: str, version: str, description: str) -> None:
        self.operations = list(operations)
        self._info = {"title": title, "version": version, "description": description}
        models = _models(self.operations)
        refs, top = models_json_schema(models, ref_template=REF_TEMPLATE)
        self._refs = refs
        self._schemas: dict[str, Any] = top.get("$defs", {})

    def _ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(self._refs[(model, mode)])

    def _schema_of(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        name = self._ref(model, mode)["$ref"].rsplit("/", 1)[-1]
        return dict(self._schemas[name])

    def _content(self, contents: Iterable[Content], mode: JsonSchemaMode) -> dict[str, Any]:
        return {
            content.media_type: {
                "schema": self._ref(content.model, mode)
                if content.model is not None
                else {"type": "string", "contentMediaType": content.media_type}
            }
            for content in contents
        }

    def _parameters(self, operation: Operation) -> list[dict[str, Any]]:
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": dict(operation.path_schemas.get(name, {"type": "string"})),
            }
            for name in operation.path_parameters()
        ]
        if operation.query is not None:
            schema = self._schema_of(operation.query, "validation")
            required = set(schema.get("required", []))
            for name, property_schema in schema["properties"].items():
                parameter = {"name": name, "in": "query", "required": name in required}
                if "description" in property_schema:
                    parameter["description"] = property_schema["description"]
                parameters.append(parameter | {"schema": _not_null(property_schema)})
        for name, description in operation.headers.items():
            parameters.append(
                {
                    "name": name,
                    "in": "header",
                    "required": False,
                    "description": description,
                    "schema": {"type": "string"},
                }
            )
        return parameters

    def _operation(self, operation: Operation) -> dict[str, Any]:
        responses: dict[str, Any] = {}
        for status, answer in sorted(operation.answers.items()):
            response: dict[str, Any] = {"description": answer.description}
            if answer.content:
                response["content"] = self._content(answer.content, "serialization")
            if answer.headers:
                response["headers"] = {
                    name: {"description": text, "schema": {"type": "string"}} for name, text in answer.headers.items()
                }
            responses[str(status)] = response
        error = {JSON: {"schema": {"$ref": REF_TEMPLATE.format(model=ERROR_SCHEMA)}}}
        for status in operation.error_statuses():
            responses.setdefault(str(status), {"description": ERRORS[status], "content": error})
        spec: dict[str, Any] = {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "tags": [operation.tag],
            "parameters": self._parameters(operation),
            "responses": responses,
        }
        if operation.description:
            spec["description"] = operation.description
        if operation.body:
            spec["requestBody"] = {
                "required": operation.body_required,
                "content": self._content(operation.body, "validation"),
            }
        if operation.scope is None:
            spec["security"] = []
        else:
            scopes = [operation.scope.value]
            spec["security"] = [{"ApiKey": scopes}, {"Bearer": scopes}]
            spec["x-required-scope"] = operation.scope.value
        return spec

    def build(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for operation in self.operations:
            paths.setdefault(operation.path, {})[operation.method.lower()] = self._operation(operation)
        return {
            "openapi": "3.1.0",
            "info": self._info,
            "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
            "paths": paths,
            "components": {"schemas": self._schemas, "securitySchemes": SECURITY_SCHEMES},
        }
