"""The conversation list (scope `conversations:read`): filtered, newest first, a cursor per page."""

from __future__ import annotations

import asyncio

import azure.functions as func

from functions.auth import guarded
from functions.http import json_errors, model_response, origin
from shared.security.roles import Scope

bp = func.Blueprint()


@bp.route(route="conversations", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.CONVERSATIONS_READ)
async def list_conversations(req: func.HttpRequest) -> func.HttpResponse:
    from shared import cursor
    from shared.admin_models import ConversationItem, ConversationPage, ConversationQuery
    from shared.services import services
    from shared.storage.conversation_index import ConversationFilter, ConversationIndex
    from shared.turn_requests import parse_query

    query = parse_query(ConversationQuery, req.params)
    after = None if query.cursor is None else cursor.decode(query.cursor, cursor.UUID_ID)
    svc = services()
    where = ConversationFilter(
        agent=query.agent,
        status=query.status,
        outcome=None if query.outcome is None else query.outcome.value,
        since=query.since,
        until=query.until,
    )
    index = ConversationIndex(svc.pool)
    rows = await asyncio.to_thread(
        lambda: index.page(where, query.limit + 1, None if after is None else (after.created_at, after.id))
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    base = f"{origin(req, svc.settings.public_base_url)}/api/conversations"
    items = [
        ConversationItem(
            conversation_id=row.id,
            agent=row.agent,
            channel=row.channel,
            language=row.language,
            status=row.status,
            outcome=row.outcome,
            created_at=row.created_at,
            ended_at=row.ended_at,
            turns=row.turns,
            transcript_url=f"{base}/{row.id}",
        )
        for row in page
    ]
    next_cursor = cursor.encode(page[-1].created_at, page[-1].id) if more else None
    return model_response(ConversationPage(items=items, next_cursor=next_cursor))
