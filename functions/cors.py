"""CORS preflights: one route answers `OPTIONS` for every path, from the ALLOWED_ORIGINS allow-list.

The method is part of a route's match (ASP.NET routing in the Functions host), so this catch-all
sees only `OPTIONS`, which no other route takes. Azure's own CORS setting (site config) must stay
empty: when set, App Service answers CORS itself and code like this has no effect.
"""

from __future__ import annotations

import azure.functions as func

from functions.http import error_response, secured

bp = func.Blueprint()


@bp.route(route="{*path}", methods=["OPTIONS"], auth_level=func.AuthLevel.ANONYMOUS)
async def preflight(req: func.HttpRequest) -> func.HttpResponse:
    """204 with the CORS headers for an allowed origin and method, else a JSON 403 without them."""
    from shared.services import services

    answer = services().cors.preflight(req.headers.get("origin"), req.headers.get("access-control-request-method"))
    if answer.status == 204:
        return secured(func.HttpResponse(status_code=204, headers=dict(answer.headers)))
    message = "This origin may not call the API from a browser, or not with this method."
    return secured(error_response(answer.status, "cors_refused", message, dict(answer.headers)))
