"""The tenant's phone numbers over HTTP: which agent answers each, through which provider (`agents:read`
to list, `agents:admin` to write).

A number is the tenant's alone: one another tenant holds is a 409 `number_taken` that says nothing of
whose, and one of another tenant's is as unknown here as none (404).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import azure.functions as func

from functions.auth import current_actor, guarded
from functions.http import json_errors, model_response
from shared.errors import NotFound
from shared.security.roles import Scope

if TYPE_CHECKING:
    from shared.admin_models import PhoneNumberView
    from shared.storage.phone_numbers import PhoneNumberRecord, PhoneNumberRepository

bp = func.Blueprint()

NUMBER = re.compile(r"\+[1-9][0-9]{6,14}")


def _numbers() -> PhoneNumberRepository:
    from shared.services import services
    from shared.storage.phone_numbers import PhoneNumberRepository

    return PhoneNumberRepository(services().pool)


def _number(req: func.HttpRequest) -> str:
    number = str(req.route_params["number"])
    if not NUMBER.fullmatch(number):
        raise NotFound("No such phone number.")
    return number


def _view(record: PhoneNumberRecord) -> PhoneNumberView:
    from shared.admin_models import PhoneNumberView

    return PhoneNumberView.model_validate(record, from_attributes=True)


@bp.route(route="phone-numbers", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_READ)
async def list_phone_numbers(req: func.HttpRequest) -> func.HttpResponse:
    from shared import cursor
    from shared.admin_models import PageQuery, PhoneNumberPage
    from shared.turn_requests import parse_query

    query = parse_query(PageQuery, req.params)
    after = None if query.cursor is None else cursor.decode(query.cursor, NUMBER)
    numbers = _numbers()
    rows = await asyncio.to_thread(
        lambda: numbers.page(query.limit + 1, None if after is None else (after.created_at, after.id))
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    next_cursor = cursor.encode(page[-1].created_at, page[-1].number) if more else None
    return model_response(PhoneNumberPage(items=[_view(row) for row in page], next_cursor=next_cursor))


@bp.route(route="phone-numbers", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_ADMIN)
async def create_phone_number(req: func.HttpRequest) -> func.HttpResponse:
    from shared.admin_models import PhoneNumberRequest
    from shared.turn_requests import parse_json

    request = parse_json(PhoneNumberRequest, req.headers.get("content-type"), req.get_body())
    actor, numbers = current_actor(), _numbers()
    record = await asyncio.to_thread(lambda: numbers.create(request.number, request.agent, request.provider, actor))
    return model_response(_view(record), status=201)


@bp.route(route="phone-numbers/{number}", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_ADMIN)
async def update_phone_number(req: func.HttpRequest) -> func.HttpResponse:
    """Which agent answers the number, through which provider."""
    from shared.admin_models import PhoneNumberChange
    from shared.turn_requests import parse_json

    number = _number(req)
    change = parse_json(PhoneNumberChange, req.headers.get("content-type"), req.get_body())
    actor, numbers = current_actor(), _numbers()
    record = await asyncio.to_thread(lambda: numbers.update(number, change.agent, change.provider, actor))
    return model_response(_view(record))


@bp.route(route="phone-numbers/{number}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_ADMIN)
async def delete_phone_number(req: func.HttpRequest) -> func.HttpResponse:
    number, actor, numbers = _number(req), current_actor(), _numbers()
    await asyncio.to_thread(lambda: numbers.delete(number, actor))
    return func.HttpResponse(status_code=204)
