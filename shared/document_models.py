"""What the knowledge-document routes (`/api/agents/{agent}/documents`) take and answer.

The document itself is the raw request body; its title and id come in the query, bounded like every
other admin field.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from shared.admin_models import PageQuery
from shared.api_models import ApiModel, Timestamp
from shared.storage.knowledge import Origin
from shared.turn_requests import ClientText

DOCUMENT_ID = r"^[a-z0-9][a-z0-9-]{0,119}$"
"""The document id column's own check."""
MAX_TITLE_CHARS = 300
INLINE_PREFIX = "inline-"
"""The agent file's inline entries are `inline-<title>`: an uploaded document may not take such an id."""

Title = Annotated[ClientText, StringConstraints(strip_whitespace=True, max_length=MAX_TITLE_CHARS, pattern=r"\S")]


class DocumentQuery(PageQuery):
    origin: Origin | None = Field(default=None, description="Only documents of this origin.")


class UploadQuery(ApiModel):
    title: Title = Field(description="How passages of the document are cited.")
    document_id: Annotated[str, StringConstraints(pattern=DOCUMENT_ID)] | None = Field(
        default=None,
        description="Defaults to the title and type as the knowledge command names a file: `Menu 2024` as PDF "
        "is `menu-2024-pdf`. Uploading to an existing id replaces that document.",
    )

    @model_validator(mode="after")
    def _not_inline(self) -> Self:
        if self.document_id is not None and self.document_id.startswith(INLINE_PREFIX):
            raise ValueError(f"document_id: `{INLINE_PREFIX}…` is kept for the agent file's inline entries")
        return self


class DocumentView(ApiModel):
    document_id: str
    title: str
    source: str = Field(description="The file name passages cite (the agent file, for inline entries).")
    origin: Origin = Field(
        description="`inline` and `file`: from the agent file, changed only there; `ingest`: uploaded here or "
        "ingested with the knowledge command."
    )
    content_type: str
    size_bytes: int
    chunks: int
    indexed: bool = Field(
        description="Azure AI Search holds this version (always false without it). Full-text search finds a "
        "document either way."
    )
    updated_at: Timestamp


class UploadedDocument(DocumentView):
    change: Literal["created", "replaced", "unchanged"] = Field(
        description="`unchanged`: the same title and bytes were there already, and nothing was redone."
    )


class DocumentPage(ApiModel):
    items: list[DocumentView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last.")
