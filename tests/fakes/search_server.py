"""A fake Azure AI Search service on loopback: the REST subset `azure-search-documents` 12 sends.

Paths come in both spellings: the SDK's OData form (`/indexes('knowledge')`,
`/indexes('knowledge')/docs/search.index`, `/indexes('knowledge')/docs/search.post.search`) and the
documented one (`/indexes/knowledge`, `/indexes/knowledge/docs/index`, `/indexes/knowledge/docs/search`).
Every request needs `api-version` and the `api-key` header (else 403, as a wrong key gets). It keeps
index definitions and documents in memory, checks uploads against the index (unknown fields, missing
key, vector size: 400), answers `search`/`filter` (`field eq 'value'` joined by `and`)/`vectorQueries`/
`top`/`select`, fusing text and vector rankings by reciprocal rank as the service does for hybrid
queries. Scripted failures (429 with Retry-After, 503) answer the next requests. Every request is recorded.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackFake

INDEX_PATHS = ("/indexes('{name}')", "/indexes/{name}")
_FILTER_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$")
_WORD = re.compile(r"\w+")
JSON_BODY: web.RequestKey[dict[str, Any]] = web.RequestKey("json_body", dict)


@dataclass(frozen=True)
class Throttled:
    retry_after_seconds: int = 0


@dataclass(frozen=True)
class Unavailable:
    pass


Failure = Throttled | Unavailable


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeSearchServer(LoopbackFake):
    """Start with `with FakeSearchServer(api_key="k") as server:`; `server.url` is its endpoint."""

    _thread_name = "fake-search"

    api_key: str = "test-search-key"
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    _script: deque[Failure] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, *failures: Failure) -> None:
        """The next requests fail like this, in order."""
        with self._lock:
            self._script.extend(failures)

    def _application(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        for template in INDEX_PATHS:
            index = template.format(name="{name}")
            app.router.add_put(index, self._put_index)
            app.router.add_get(index, self._get_index)
            app.router.add_delete(index, self._delete_index)
        app.router.add_post("/indexes('{name}')/docs/search.index", self._index_documents)
        app.router.add_post("/indexes/{name}/docs/index", self._index_documents)
        app.router.add_post("/indexes('{name}')/docs/search.post.search", self._search)
        app.router.add_post("/indexes/{name}/docs/search", self._search)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        if "api-version" not in request.query:
            return _error(400, "MissingRequiredParameter", "The request is invalid. api-version is required.")
        if request.headers.get("api-key") != self.api_key:
            return web.Response(status=403)
        with self._lock:
            failure = self._script.popleft() if self._script else None
        match failure:
            case Throttled(seconds):
                return _error(429, "TooManyRequests", "Too many requests.", {"Retry-After": str(seconds)})
            case Unavailable():
                return _error(503, "ServiceUnavailable", "Service is temporarily unavailable.")
        request[JSON_BODY] = body if isinstance(body, dict) else {}
        response: web.StreamResponse = await handler(request)
        return response

    async def _put_index(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        definition = request[JSON_BODY]
        if definition.get("name") != name:
            return _error(400, "InvalidRequestParameter", "The index name in the body does not match the URL.")
        keys = [f for f in definition.get("fields", []) if f.get("key")]
        if len(keys) != 1 or keys[0].get("type") != "Edm.String":
            return _error(
                400, "InvalidRequestParameter", "The index must have exactly one key field of type Edm.String."
            )
        created = name not in self.indexes
        self.indexes[name] = definition
        self.documents.setdefault(name, {})
        return web.json_response(definition, status=201 if created else 200)

    async def _get_index(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.indexes:
            return _no_index(name)
        return web.json_response(self.indexes[name])

    async def _delete_index(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.indexes.pop(name, None) is None:
            return _no_index(name)
        self.documents.pop(name, None)
        return web.Response(status=204)

    async def _index_documents(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.indexes:
            return _no_index(name)
        fields = {f["name"]: f for f in self.indexes[name]["fields"]}
        key = next(f["name"] for f in fields.values() if f.get("key"))
        store = self.documents[name]
        results = []
        for action in request[JSON_BODY].get("value", []):
            verb = action.get("@search.action", "upload")
            document = {k: v for k, v in action.items() if k != "@search.action"}
            unknown = sorted(set(document) - set(fields))
            if unknown:
                return _error(
                    400,
                    "InvalidDocument",
                    f"The property '{unknown[0]}' does not exist on type 'search.documentFields'.",
                )
            if not isinstance(document.get(key), str) or not document[key]:
                return _error(400, "InvalidDocument", f"The key field '{key}' is missing or empty.")
            for field_name, value in document.items():
                dimensions = fields[field_name].get("dimensions")
                if dimensions is not None and len(value) != dimensions:
                    message = f"The vector field '{field_name}' must have {dimensions} dimensions, not {len(value)}."
                    return _error(400, "InvalidDocument", message)
            existed = document[key] in store
            if verb == "delete":
                store.pop(document[key], None)
                status = 200
            elif verb in ("upload", "mergeOrUpload"):
                store[document[key]] = (store.get(document[key], {}) if verb == "mergeOrUpload" else {}) | document
                status = 200 if existed else 201
            else:
                return _error(400, "InvalidRequestParameter", f"Unsupported action {verb!r}.")
            results.append({"key": document[key], "status": True, "errorMessage": None, "statusCode": status})
        return web.json_response({"value": results})

    async def _search(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.indexes:
            return _no_index(name)
        query = request[JSON_BODY]
        fields = {f["name"]: f for f in self.indexes[name]["fields"]}
        try:
            candidates = [d for d in self.documents[name].values() if _matches(query.get("filter"), d, fields)]
        except ValueError as error:
            return _error(400, "InvalidRequestParameter", f"Invalid expression: {error}")
        rankings: list[list[str]] = []
        key = next(f["name"] for f in fields.values() if f.get("key"))
        text = query.get("search") or ""
        if text.strip() and text.strip() != "*":
            searchable = [n for n, f in fields.items() if f.get("searchable") and f["type"] == "Edm.String"]
            words = {w.lower() for w in _WORD.findall(text)}
            scored = [(sum(_count(words, str(d.get(n, ""))) for n in searchable), d[key]) for d in candidates]
            rankings.append([k for s, k in sorted(scored, key=lambda x: (-x[0], x[1])) if s > 0])
        elif not query.get("vectorQueries"):
            rankings.append(sorted(d[key] for d in candidates))
        for vector_query in query.get("vectorQueries") or []:
            if vector_query.get("kind") != "vector":
                return _error(400, "InvalidRequestParameter", "Only vector queries of kind 'vector' are supported.")
            target = vector_query["fields"]
            vector = vector_query["vector"]
            if fields.get(target, {}).get("dimensions") != len(vector):
                return _error(400, "InvalidRequestParameter", f"The vector query does not match field '{target}'.")
            near = sorted(candidates, key=lambda d: -_cosine(vector, d.get(target) or []))
            rankings.append([d[key] for d in near[: vector_query.get("k") or 50]])
        fused: dict[str, float] = {}
        for ranking in rankings:
            for rank, document_key in enumerate(ranking, start=1):
                fused[document_key] = fused.get(document_key, 0.0) + 1.0 / (60 + rank)
        top = query.get("top") or 50
        selected = [s.strip() for s in query["select"].split(",")] if query.get("select") else None
        retrievable = {n for n, f in fields.items() if f.get("retrievable", True)}
        hits = []
        for document_key, score in sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:top]:
            document = self.documents[name][document_key]
            shown = {k: v for k, v in document.items() if k in retrievable and (selected is None or k in selected)}
            hits.append({"@search.score": score, **shown})
        return web.json_response({"value": hits})


def _matches(expression: str | None, document: dict[str, Any], fields: dict[str, Any]) -> bool:
    if not expression:
        return True
    for clause in expression.split(" and "):
        match = _FILTER_CLAUSE.match(clause)
        if match is None:
            raise ValueError(f"unsupported filter {clause!r}")
        name, value = match.group(1), match.group(2).replace("''", "'")
        if not fields.get(name, {}).get("filterable"):
            raise ValueError(f"field {name!r} is not filterable")
        if document.get(name) != value:
            return False
    return True


def _count(words: set[str], text: str) -> int:
    return sum(1 for w in _WORD.findall(text.lower()) if w in words)


def _cosine(a: list[float], b: list[float]) -> float:
    if len(a) != len(b) or not a:
        return -1.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _no_index(name: str) -> web.Response:
    return _error(404, "ResourceNameNotFound", f"No index with the name '{name}' was found in the service.")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"code": code, "message": message}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)
