"""The tenant's agents over HTTP: list, read, create, replace, delete, and every version (`agents:read`
to read, `agents:admin` to write).

A profile is the agent file's fields as JSON (at most MAX_PROFILE_BYTES, checked before parsing). An
answer with one agent carries its version as the `ETag`; a PUT whose `If-Match` names another is a 412,
so two admins editing at once cannot silently undo each other's change. Agents from files are read-only
here (409 `agent_managed_by_file`). A deleted agent starts no conversation; its conversations keep it.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import azure.functions as func

from functions.auth import current_actor, guarded
from functions.http import json_errors, model_response
from shared.errors import NotFound, Unprocessable
from shared.security.roles import Scope

if TYPE_CHECKING:
    from shared.admin_models import AgentView, ApiAgentProfile
    from shared.storage.agents import AgentRecord, AgentRepository

bp = func.Blueprint()

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
VERSION = re.compile(r"[1-9][0-9]{0,8}")
_ETAG = re.compile(r'\s*"([1-9][0-9]{0,8})"\s*')


def _agents() -> AgentRepository:
    from shared.services import services

    return services().agents


def _name(req: func.HttpRequest) -> str:
    name = str(req.route_params["name"])
    if not NAME.fullmatch(name):
        raise NotFound(f"No agent {name[:80]!r}.")
    return name


def _view(record: AgentRecord) -> AgentView:
    from shared.admin_models import AgentView

    return AgentView(
        name=record.name,
        display_name=record.profile.display_name,
        version=record.version,
        source=record.source,
        created_at=record.created_at,
        updated_at=record.updated_at,
        profile=record.profile,
    )


def _answer(record: AgentRecord, status: int = 200) -> func.HttpResponse:
    return model_response(_view(record), status=status, headers={"ETag": f'"{record.version}"'})


def _expected_version(if_match: str | None) -> int | None:
    """The version `If-Match` names (None: absent or `*`, any version); one no agent has otherwise."""
    from shared.storage.agents import VersionMismatch

    if if_match is None or if_match.strip() == "*":
        return None
    match = _ETAG.fullmatch(if_match)
    if match is None:
        raise VersionMismatch('If-Match must be one ETag a read of the agent answered, like "3".')
    return int(match.group(1))


def _profile(req: func.HttpRequest) -> ApiAgentProfile:
    from shared.admin_models import MAX_PROFILE_BYTES, ApiAgentProfile
    from shared.turn_requests import parse_json

    return parse_json(ApiAgentProfile, req.headers.get("content-type"), req.get_body(), MAX_PROFILE_BYTES)


@bp.route(route="agents", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_READ)
async def list_agents(req: func.HttpRequest) -> func.HttpResponse:
    from shared import cursor
    from shared.admin_models import AgentItem, AgentPage, PageQuery
    from shared.turn_requests import parse_query

    query = parse_query(PageQuery, req.params)
    after = None if query.cursor is None else cursor.decode(query.cursor, NAME)
    agents = _agents()
    rows = await asyncio.to_thread(
        lambda: agents.page(query.limit + 1, None if after is None else (after.created_at, after.id))
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    items = [
        AgentItem(
            name=row.name,
            display_name=row.display_name,
            version=row.version,
            source=row.source,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in page
    ]
    next_cursor = cursor.encode(page[-1].created_at, page[-1].name) if more else None
    return model_response(AgentPage(items=items, next_cursor=next_cursor))


@bp.route(route="agents", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_ADMIN)
async def create_agent(req: func.HttpRequest) -> func.HttpResponse:
    profile, actor, agents = _profile(req), current_actor(), _agents()
    record = await asyncio.to_thread(lambda: agents.create(profile, actor))
    response = _answer(record, status=201)
    response.headers["Location"] = f"/api/agents/{record.name}"
    return response


@bp.route(route="agents/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_READ)
async def get_agent(req: func.HttpRequest) -> func.HttpResponse:
    name, agents = _name(req), _agents()
    record = await asyncio.to_thread(lambda: agents.get(name))
    if record is None:
        raise NotFound(f"No agent {name!r}.")
    return _answer(record)


@bp.route(route="agents/{name}", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_ADMIN)
async def replace_agent(req: func.HttpRequest) -> func.HttpResponse:
    """The whole profile anew: its next version."""
    name = _name(req)
    expected = _expected_version(req.headers.get("if-match"))
    profile, actor, agents = _profile(req), current_actor(), _agents()
    if profile.name != name:
        message = f"name: {profile.name!r} is not the agent's name in the path, {name!r}."
        raise Unprocessable(message, code="invalid_request")
    record = await asyncio.to_thread(lambda: agents.replace(profile, actor, expected))
    return _answer(record)


@bp.route(route="agents/{name}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_ADMIN)
async def delete_agent(req: func.HttpRequest) -> func.HttpResponse:
    name, actor, agents = _name(req), current_actor(), _agents()
    await asyncio.to_thread(lambda: agents.delete(name, actor))
    return func.HttpResponse(status_code=204)


@bp.route(route="agents/{name}/versions", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_READ)
async def list_agent_versions(req: func.HttpRequest) -> func.HttpResponse:
    from shared import cursor
    from shared.admin_models import AgentVersionPage, AgentVersionView, VersionPageQuery
    from shared.turn_requests import parse_query

    name = _name(req)
    query = parse_query(VersionPageQuery, req.params)
    after = None if query.cursor is None else cursor.decode(query.cursor, VERSION)
    agents = _agents()
    rows = await asyncio.to_thread(
        lambda: agents.versions(name, query.limit + 1, None if after is None else int(after.id))
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    items = [
        AgentVersionView(version=row.version, created_by=row.created_by, created_at=row.created_at, profile=row.profile)
        for row in page
    ]
    next_cursor = cursor.encode(page[-1].created_at, str(page[-1].version)) if more else None
    return model_response(AgentVersionPage(items=items, next_cursor=next_cursor))
