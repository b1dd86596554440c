"""The tenant's API keys over HTTP: create, list, rotate, revoke (scope `keys:admin`).

A caller hands out nothing it does not hold itself: a new key's scopes, and a rotated key's (whose new
secret the caller receives), must all be the caller's, or the answer is 403. A key id of another
tenant is as unknown as none (404). Each create, rotation and revocation is in the audit log, written in
the same transaction (`shared/storage/api_keys.py`).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import azure.functions as func

from functions.auth import current_actor, current_principal, guarded
from functions.http import json_errors, model_response
from shared.errors import Forbidden, NotFound
from shared.security.roles import Scope, allows
from shared.tenancy import current_tenant

if TYPE_CHECKING:
    from shared.admin_models import ApiKeyView, IssuedApiKey
    from shared.security.api_keys import ApiKeys
    from shared.security.api_keys import IssuedApiKey as Issued
    from shared.storage.api_keys import ApiKeyRecord

bp = func.Blueprint()

KEY_ID = re.compile(r"[0-9a-f]{12}")


def _keys() -> ApiKeys:
    from shared.services import services

    return services().api_keys


def _require_all(scopes: set[Scope]) -> None:
    """403 unless the caller holds every one of `scopes` (naming the ones it lacks)."""
    principal = current_principal()
    missing = sorted(scope.value for scope in scopes if not allows(principal, scope))
    if missing:
        raise Forbidden(f"You may not hand out permissions you do not hold: {', '.join(missing)}.")


def _key_id(req: func.HttpRequest) -> str:
    key_id = str(req.route_params["key_id"])
    if not KEY_ID.fullmatch(key_id):
        raise NotFound("No such API key.")
    return key_id


def view(record: ApiKeyRecord) -> ApiKeyView:
    from shared.admin_models import ApiKeyView
    from shared.security.api_keys import display_prefix

    return ApiKeyView(
        id=record.id,
        prefix=display_prefix(record.id),
        name=record.name,
        scopes=list(record.scopes),
        created_by=record.created_by,
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
        replaced_by=record.replaced_by,
    )


def _issued(issued: Issued) -> IssuedApiKey:
    from shared.admin_models import IssuedApiKey

    return IssuedApiKey(key=issued.key, **view(issued.record).model_dump())


@bp.route(route="keys", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.KEYS_ADMIN)
async def create_key(req: func.HttpRequest) -> func.HttpResponse:
    from shared.admin_models import ApiKeyRequest
    from shared.turn_requests import parse_json

    request = parse_json(ApiKeyRequest, req.headers.get("content-type"), req.get_body())
    scopes = set(request.scopes)
    _require_all(scopes)
    tenant, creator = current_tenant(), current_actor()
    issued = await asyncio.to_thread(lambda: _keys().create(tenant, request.name, scopes, creator, request.expires_at))
    return model_response(_issued(issued), status=201)


@bp.route(route="keys", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.KEYS_ADMIN)
async def list_keys(req: func.HttpRequest) -> func.HttpResponse:
    from shared import cursor
    from shared.admin_models import ApiKeyPage, PageQuery
    from shared.turn_requests import parse_query

    query = parse_query(PageQuery, req.params)
    after = None if query.cursor is None else cursor.decode(query.cursor, KEY_ID)
    tenant = current_tenant()
    records = await asyncio.to_thread(
        lambda: _keys().page(tenant, query.limit + 1, None if after is None else (after.created_at, after.id))
    )
    page = records[: query.limit]
    more = len(records) > query.limit
    next_cursor = cursor.encode(page[-1].created_at, page[-1].id) if more else None
    return model_response(ApiKeyPage(items=[view(record) for record in page], next_cursor=next_cursor))


@bp.route(route="keys/{key_id}/rotate", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.KEYS_ADMIN)
async def rotate_key(req: func.HttpRequest) -> func.HttpResponse:
    """A new key in place of the old one, which is refused from now on."""
    key_id, tenant, creator = _key_id(req), current_tenant(), current_actor()
    keys = _keys()
    current = await asyncio.to_thread(lambda: keys.get(tenant, key_id))
    known = {scope.value for scope in Scope}
    _require_all({Scope(scope) for scope in current.scopes if scope in known})
    issued = await asyncio.to_thread(lambda: keys.rotate(tenant, key_id, creator))
    return model_response(_issued(issued), status=201)


@bp.route(route="keys/{key_id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.KEYS_ADMIN)
async def revoke_key(req: func.HttpRequest) -> func.HttpResponse:
    """Revoke the key (again is no error): 200 with the key as it now is, `revoked_at` set."""
    key_id, tenant, actor = _key_id(req), current_tenant(), current_actor()
    record = await asyncio.to_thread(lambda: _keys().revoke(tenant, key_id, actor))
    return model_response(view(record))
