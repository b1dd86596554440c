"""An agent's knowledge documents over HTTP: upload, list, read, delete (scopes `agents:read`, `agents:admin`).

The same `KnowledgeLibrary` as `python -m shared.knowledge`, in the caller's tenant: another tenant's
agent is as unknown as none (404 `unknown_agent`). The agent file's own documents can be read here
but not changed (409 `document_managed_by_file`): the next start would bring them back.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import azure.functions as func

from functions.auth import current_actor, guarded
from functions.http import json_errors, model_response
from shared.audit import AuditAction
from shared.errors import BadRequest, NotFound, Unprocessable, UnsupportedMediaType
from shared.security.roles import Scope

if TYPE_CHECKING:
    from shared.document_models import DocumentView
    from shared.knowledge.library import KnowledgeLibrary
    from shared.storage.knowledge import StoredDocument

bp = func.Blueprint()


def _audit(action: AuditAction, agent: str, document_id: str, **details: object) -> None:
    """After the library's write (several steps, its own transactions): an entry of its own."""
    from shared.audit import AuditEntry
    from shared.services import services
    from shared.storage.audit import AuditLog

    target = f"agent/{agent}/document/{document_id}"
    AuditLog(services().pool).record(AuditEntry(current_actor(), action, target, details))


def _library() -> KnowledgeLibrary:
    """On first use the agent files are synced (Postgres): call it off the event loop."""
    from shared.services import services

    return services().library


def _agent(req: func.HttpRequest) -> str:
    from shared.admin_models import AGENT_NAME

    agent = str(req.route_params["agent"])
    if not re.fullmatch(AGENT_NAME, agent):
        raise NotFound("No such agent.", code="unknown_agent")
    return agent


def _document_id(req: func.HttpRequest) -> str:
    from shared.document_models import DOCUMENT_ID

    document_id = str(req.route_params["document_id"])
    if not re.fullmatch(DOCUMENT_ID, document_id):
        raise NotFound("No such document.", code="document_not_found")
    return document_id


def _view(document: StoredDocument) -> DocumentView:
    from shared.document_models import DocumentView

    return DocumentView.model_validate(document, from_attributes=True)


@bp.route(route="agents/{agent}/documents", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_ADMIN)
async def upload_document(req: func.HttpRequest) -> func.HttpResponse:
    """The body is the document, its type the `Content-Type`; every bound is checked before it is parsed.
    201 when the id is new, 200 when it replaced a document or found the same one there already."""
    from shared.document_models import INLINE_PREFIX, UploadedDocument, UploadQuery
    from shared.knowledge.library import document_id_for
    from shared.knowledge.loading import EXTENSIONS
    from shared.services import services
    from shared.storage.knowledge import slug
    from shared.turn_requests import check_size, media_type, parse_query

    agent = _agent(req)
    query = parse_query(UploadQuery, req.params)
    extension = EXTENSIONS.get(media_type(req.headers.get("content-type")))
    if extension is None:
        raise UnsupportedMediaType(f"Send the document as one of {', '.join(EXTENSIONS)}.")
    settings = services().settings
    body = req.get_body()
    check_size(body, min(settings.max_request_bytes, settings.knowledge_max_file_bytes))
    if not body:
        raise Unprocessable("The document is empty.", code="empty_document")
    file_name = f"{slug(query.title)}{extension}"
    document_id = query.document_id or document_id_for(file_name)
    if document_id.startswith(INLINE_PREFIX):
        raise BadRequest(
            f"The title makes the id {document_id!r}, and `{INLINE_PREFIX}…` is kept for the agent file's inline "
            "entries: pass another document_id.",
            code="reserved_document_id",
        )
    title = query.title
    stored, change = await asyncio.to_thread(lambda: _library().upload(agent, document_id, title, file_name, body))
    if change != "unchanged":
        action = AuditAction.DOCUMENT_CREATE if change == "created" else AuditAction.DOCUMENT_REPLACE
        details = {"content_type": stored.content_type, "size_bytes": stored.size_bytes, "chunks": stored.chunks}
        await asyncio.to_thread(lambda: _audit(action, agent, document_id, **details))
    uploaded = UploadedDocument(change=change, **_view(stored).model_dump())
    location = {"Location": f"/api/agents/{agent}/documents/{document_id}"}
    return model_response(uploaded, status=201 if change == "created" else 200, headers=location)


@bp.route(route="agents/{agent}/documents", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_READ)
async def list_documents(req: func.HttpRequest) -> func.HttpResponse:
    """In document id order, a cursor per page."""
    from shared import cursor
    from shared.document_models import DOCUMENT_ID, DocumentPage, DocumentQuery
    from shared.turn_requests import parse_query

    agent = _agent(req)
    query = parse_query(DocumentQuery, req.params)
    after = None if query.cursor is None else cursor.decode_id(query.cursor, re.compile(DOCUMENT_ID))
    documents = await asyncio.to_thread(lambda: _library().page(agent, query.origin, after, query.limit + 1))
    page = documents[: query.limit]
    next_cursor = cursor.encode_id(page[-1].document_id) if len(documents) > query.limit else None
    return model_response(DocumentPage(items=[_view(d) for d in page], next_cursor=next_cursor))


@bp.route(route="agents/{agent}/documents/{document_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_READ)
async def get_document(req: func.HttpRequest) -> func.HttpResponse:
    agent, document_id = _agent(req), _document_id(req)
    return model_response(_view(await asyncio.to_thread(lambda: _library().get(agent, document_id))))


@bp.route(route="agents/{agent}/documents/{document_id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.AGENTS_ADMIN)
async def delete_document(req: func.HttpRequest) -> func.HttpResponse:
    """Its chunks, index entries and stored source go with it: 204."""
    agent, document_id = _agent(req), _document_id(req)
    await asyncio.to_thread(lambda: _library().delete(agent, document_id))
    await asyncio.to_thread(lambda: _audit(AuditAction.DOCUMENT_DELETE, agent, document_id))
    return func.HttpResponse(status_code=204)
