"""The try-it page (`web/`) served by the devhost at `/web/`: static files, never a Function route.

The page calls the API on the same origin (`/api/realtime/negotiate`, `/api/agents`), so no CORS
setting is needed to try it; deployed elsewhere as static files it needs the API's CORS origins.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from shared.config import REPOSITORY_ROOT

WEB_DIR = REPOSITORY_ROOT / "web"
PREFIX = "/web"
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:",
}


async def _index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html", headers=HEADERS)


async def _to_index(_: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect(PREFIX + "/")


@web.middleware
async def page_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The page's files with its headers (scripts typed as JavaScript: ES modules demand it)."""
    response = await handler(request)
    if request.path.startswith(PREFIX + "/"):
        response.headers.update(HEADERS)
        if request.path.endswith(".js"):
            response.content_type = "text/javascript"
    return response


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get(PREFIX, _to_index, allow_head=False),
        web.get(PREFIX + "/", _index, allow_head=False),
        web.static(PREFIX, WEB_DIR, follow_symlinks=False),
    ]
