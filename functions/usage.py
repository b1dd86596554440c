"""Usage per day for the caller's tenant (scope `usage:read`), for billing and dashboards."""

from __future__ import annotations

import asyncio

import azure.functions as func

from functions.auth import guarded
from functions.http import json_errors, model_response
from shared.security.roles import Scope

bp = func.Blueprint()


@bp.route(route="usage", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.USAGE_READ)
async def usage(req: func.HttpRequest) -> func.HttpResponse:
    from shared.admin_models import UsageDay, UsageQuery, UsageReport
    from shared.services import services
    from shared.storage.usage import UsageRepository
    from shared.turn_requests import parse_query

    query = parse_query(UsageQuery, req.params)
    repository = UsageRepository(services().pool)
    days = await asyncio.to_thread(lambda: repository.per_day(query.from_, query.to))
    report = UsageReport(
        from_=query.from_,
        to=query.to,
        days=[
            UsageDay(
                day=day.day,
                conversations=day.conversations,
                minutes=round(day.minutes, 2),
                turns=day.turns,
                input_tokens=day.input_tokens,
                output_tokens=day.output_tokens,
                tts_characters=day.tts_characters,
                cost_usd=round(day.cost_usd, 8),
            )
            for day in days
        ],
    )
    return model_response(report)
