"""The devhost's web server: the app's HTTP functions, the Durable management API, a debug view."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from azure.durable_functions.models.utils.http_utils import _close_session
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from devhost import http_triggers, management
from devhost.engine import Engine
from devhost.faults import Faults
from devhost.registry import Registry

log = logging.getLogger("devhost")

MAX_BODY_BYTES = 100 * 1024 * 1024
"""The Functions host's own request limit; the app enforces its smaller one with a JSON 413."""

DEVHOST_LOCK_ID = 70710001
"""Postgres advisory lock held while a devhost owns a database, so two never share one."""


def build_app(registry: Registry, database_url: str, base_url: str, faults: Faults | None = None) -> web.Application:
    pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
        database_url, min_size=2, max_size=10, kwargs={"row_factory": dict_row, "autocommit": True}, open=False
    )
    engine = Engine(pool, registry, faults)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        owner = await AsyncConnection.connect(database_url, autocommit=True)
        row = await (await owner.execute("SELECT pg_try_advisory_lock(%s)", (DEVHOST_LOCK_ID,))).fetchone()
        if row is None or not row[0]:
            await owner.close()
            raise RuntimeError("another devhost is already running on this database")
        await pool.open(wait=True)
        await engine.start()
        yield
        await engine.stop()
        await _close_session()
        await pool.close()
        await owner.close()

    async def instance(request: web.Request) -> web.Response:
        row = await engine.status(request.match_info["instance_id"])
        if row is None:
            return web.json_response({"error": {"code": "not_found", "message": "No such instance."}}, status=404)
        return web.json_response(management.status_payload(row, show_input=True, show_history=True))

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.cleanup_ctx.append(lifecycle)
    app.add_routes(http_triggers.routes(registry.http, management.client_binding(base_url)))
    app.add_routes(management.routes(engine))
    app.add_routes([web.get("/devhost/instances/{instance_id}", instance)])
    return app
