"""`GET /api/openapi.json`: the OpenAPI 3.1 document of every route, anonymous and cacheable."""

from __future__ import annotations

import functools
import json

import azure.functions as func

from functions.http import json_errors

bp = func.Blueprint()

CACHE_SECONDS = 3600


@functools.cache
def _document() -> str:
    """Made once per process: the catalogue only changes with a deployment."""
    from functions.catalogue import document

    return json.dumps(document().build())


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        _document(),
        mimetype="application/json",
        headers={"Cache-Control": f"public, max-age={CACHE_SECONDS}"},
    )
