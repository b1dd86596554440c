"""The tenant's audit log (scope `usage:read`): every admin write, who made it and when, newest first."""

from __future__ import annotations

import asyncio
import re

import azure.functions as func

from functions.auth import guarded
from functions.http import json_errors, model_response
from shared.security.roles import Scope

bp = func.Blueprint()

ENTRY_ID = re.compile(r"[1-9][0-9]{0,18}")


@bp.route(route="audit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.USAGE_READ)
async def list_audit(req: func.HttpRequest) -> func.HttpResponse:
    from shared import cursor
    from shared.admin_models import AuditEntryView, AuditPage, AuditQuery
    from shared.services import services
    from shared.storage.audit import AuditFilter, AuditLog
    from shared.turn_requests import parse_query

    query = parse_query(AuditQuery, req.params)
    after = None if query.cursor is None else cursor.decode(query.cursor, ENTRY_ID)
    log = AuditLog(services().pool)
    where = AuditFilter(since=query.since, until=query.until, action=query.action)
    rows = await asyncio.to_thread(
        lambda: log.page(where, query.limit + 1, None if after is None else (after.created_at, int(after.id)))
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    items = [
        AuditEntryView(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            details=row.details,
        )
        for row in page
    ]
    next_cursor = cursor.encode(page[-1].at, str(page[-1].id)) if more else None
    return model_response(AuditPage(items=items, next_cursor=next_cursor))
