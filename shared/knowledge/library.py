"""Every agent's knowledge documents: ingest, replace, delete and list them, and keep the index in step.

One path for every source: the file is bounded and loaded, split into chunks, its original kept in
Blob, its chunks stored in Postgres in place of the earlier version (one transaction), then, when
Azure AI Search is configured, embedded and uploaded. Postgres is the truth: a document whose upload
failed stays marked unindexed and is uploaded on the next `index_pending` (every cold start runs it).
Without Azure AI Search, chunk embeddings are kept in Postgres instead when `vectors` is given (an
embeddings model is configured and the database has pgvector); a chunk that could not be embedded is
embedded by the next `embed_pending`, and until then is found by full-text search only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shared.agent.catalog import AgentFileError
from shared.config import Settings
from shared.errors import Conflict, NotFound
from shared.knowledge.loading import Limits, check_size, content_type_of, load_text
from shared.knowledge.sources import source_blob_name
from shared.knowledge.splitting import split_text
from shared.models import AgentProfile
from shared.storage.blobs import BlobStore
from shared.storage.knowledge import (
    KnowledgeRepository,
    NewDocument,
    Origin,
    StoredDocument,
    content_hash,
    slug,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from shared.knowledge.azure_search import AzureSearchIndex
    from shared.knowledge.vectors import ChunkVectors

log = logging.getLogger(__name__)

Change = Literal["created", "replaced", "unchanged"]


def document_id_for(file_name: str) -> str:
    """A document is known by its file name: `Menu 2024.pdf` is `menu-2024-pdf`."""
    return slug(Path(file_name).name)


@dataclass
class KnowledgeLibrary:
    repository: KnowledgeRepository
    sources: BlobStore
    settings: Settings
    index: AzureSearchIndex | None = None
    embeddings: Embeddings | None = None
    vectors: ChunkVectors | None = None

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(s.knowledge_max_file_bytes, s.knowledge_max_pdf_pages, s.knowledge_max_characters)

    def ingest_file(self, agent: str, path: Path) -> StoredDocument:
        """Add the file to the agent's knowledge, replacing an earlier document of the same file name."""
        self._known_agent(agent)
        if not path.is_file():
            raise NotFound(f"{path}: no such file", code="file_not_found")
        content_type_of(path.name)
        check_size(path.name, path.stat().st_size, self.limits)
        return self.ingest(agent, path.name, path.read_bytes())

    def upload(
        self, agent: str, document_id: str, title: str, file_name: str, data: bytes
    ) -> tuple[StoredDocument, Change]:
        """Ingest a document sent over the API under the caller's id; the same title and bytes again change
        nothing (no new chunks), so a client may retry an upload freely, and a retry is how a document
        whose index upload or embeddings failed the first time gets them."""
        self._known_agent(agent)
        existing = self.repository.get_document(agent, document_id)
        unchanged = existing is not None and existing.content_hash == _document_hash(title, data)
        if existing is not None and existing.origin == "ingest" and unchanged:
            return self._caught_up(existing), "unchanged"
        stored = self.ingest(agent, file_name, data, title=title, document_id=document_id)
        return stored, "created" if existing is None else "replaced"

    def get(self, agent: str, document_id: str) -> StoredDocument:
        self._known_agent(agent)
        document = self.repository.get_document(agent, document_id)
        if document is None:
            raise NotFound(f"agent {agent!r} has no document {document_id!r}", code="document_not_found")
        return document

    def ingest(
        self,
        agent: str,
        file_name: str,
        data: bytes,
        *,
        title: str = "",
        origin: Origin = "ingest",
        index: bool = True,
        document_id: str | None = None,
    ) -> StoredDocument:
        """Store the document in place of any earlier one of the same id (by default its file name's); with
        `index`, upload it now."""
        document_id = document_id or document_id_for(file_name)
        existing = self.repository.get_document(agent, document_id)
        if origin == "ingest" and existing is not None and existing.origin != "ingest":
            raise _managed_by_file(agent, existing, "change")
        loaded = load_text(file_name, data, self.limits)
        title = title or loaded.title
        chunks = split_text(
            loaded.text,
            loaded.content_type,
            self.settings.knowledge_chunk_characters,
            self.settings.knowledge_chunk_overlap,
        )
        blob_name = source_blob_name(agent, document_id, file_name)
        self.sources.put(blob_name, data, loaded.content_type)
        previous = self.repository.replace_document(
            NewDocument(
                agent=agent,
                document_id=document_id,
                title=title,
                source=Path(file_name).name,
                origin=origin,
                content_type=loaded.content_type,
                content_hash=_document_hash(title, data),
                size_bytes=len(data),
                chunks=chunks,
                blob_name=blob_name,
            )
        )
        if existing is not None and existing.blob_name and existing.blob_name != blob_name:
            self.sources.delete(existing.blob_name)  # replaced by a file of another type
        if index:
            try:
                self._index(agent, document_id, stale=previous)
            except Exception:
                # Whatever the search service or the embeddings raised: the document is stored, found by
                # full-text search and marked unindexed; the next index_pending (a cold start) uploads it.
                log.exception("agent %s: document %s stored but not uploaded to Azure AI Search", agent, document_id)
            self._embed(agent, document_id)
        elif self.index is not None:
            self.index.delete(previous)
        stored = self.repository.get_document(agent, document_id)
        assert stored is not None
        return stored

    def delete(self, agent: str, document_id: str) -> None:
        """Remove an ingested document, its chunks, its source blob and its index entries."""
        document = self.get(agent, document_id)
        if document.origin != "ingest":
            raise _managed_by_file(agent, document, "remove")
        removed = self.repository.delete_document(agent, document_id)
        if document.blob_name:
            self.sources.delete(document.blob_name)
        if self.index is not None:
            try:
                self.index.delete(removed)
            except Exception:
                # The chunks are gone from Postgres, and the retriever drops index hits Postgres no longer
                # has, so stale entries are never cited; they are overwritten if the id is used again.
                log.exception("agent %s: document %s deleted but its index entries were not", agent, document_id)

    def page(self, agent: str, origin: Origin | None, after: str | None, limit: int) -> list[StoredDocument]:
        self._known_agent(agent)
        return self.repository.page_documents(agent, origin, after, limit)

    def list(self, agent: str) -> list[StoredDocument]:
        self._known_agent(agent)
        return self.repository.list_documents(agent)

    def sync_agent_file(self, profile: AgentProfile, agents_dir: Path) -> None:
        """Load the files the agent file names (when changed) and drop those it no longer names."""
        wanted: set[str] = set()
        for entry in profile.knowledge:
            if not entry.path:
                continue
            path = agents_dir / entry.path
            document_id = document_id_for(path.name)
            wanted.add(document_id)
            try:
                content_type_of(path.name)
                check_size(path.name, path.stat().st_size, self.limits)
                data = path.read_bytes()
            except (OSError, ValueError) as error:
                raise AgentFileError(f"{profile.name}.toml: knowledge {entry.title!r}: {error}") from error
            stored = self.repository.get_document(profile.name, document_id)
            if stored is not None and stored.content_hash == _document_hash(entry.title, data):
                continue
            self.ingest(profile.name, path.name, data, title=entry.title, origin="file", index=False)
        for stale in self.repository.list_documents(profile.name, origin="file"):
            if stale.document_id not in wanted:
                removed = self.repository.delete_document(profile.name, stale.document_id)
                if self.index is not None:
                    self.index.delete(removed)
                if stale.blob_name:
                    self.sources.delete(stale.blob_name)

    def index_pending(self, agent: str) -> int:
        """Upload every document of the agent the index does not have yet; how many were uploaded."""
        if self.index is None:
            return 0
        pending = self.repository.unindexed_documents(agent)
        for document in pending:
            self._index(agent, document.document_id, stale=[])
        return len(pending)

    def embed_pending(self, agent: str) -> int:
        """Embed every chunk of the agent that has no embedding in Postgres yet; how many were embedded."""
        return 0 if self.vectors is None else self.vectors.embed_pending(agent)

    def _caught_up(self, document: StoredDocument) -> StoredDocument:
        """The document once what failed at its ingest (index upload, embeddings) has been tried again."""
        if self.index is not None and not document.indexed:
            try:
                self._index(document.agent, document.document_id, stale=[])
            except Exception:
                log.exception(
                    "agent %s: document %s still not in Azure AI Search", document.agent, document.document_id
                )
        self._embed(document.agent, document.document_id)
        refreshed = self.repository.get_document(document.agent, document.document_id)
        return refreshed or document

    def _embed(self, agent: str, document_id: str) -> None:
        if self.vectors is None:
            return
        try:
            self.vectors.embed_pending(agent, document_id)
        except Exception:
            # Whatever the embeddings vendor raised: the document is stored and found by full-text
            # search; the next embed_pending (a cold start) embeds it.
            log.exception("agent %s: document %s stored without embeddings", agent, document_id)

    def _index(self, agent: str, document_id: str, stale: Sequence[str]) -> None:
        if self.index is None or self.embeddings is None:
            return
        from shared.knowledge.azure_search import IndexedChunk

        document = self.repository.get_document(agent, document_id)
        if document is None:
            return
        hits = self.repository.chunks(agent, document_id)
        chunks = [
            IndexedChunk(h.chunk_id, agent, document_id, i, h.title, h.source, h.body) for i, h in enumerate(hits)
        ]
        vectors = self.embeddings.embed_documents([f"{c.title}\n{c.content}" for c in chunks])
        self.index.upload(chunks, vectors)
        current = {c.chunk_id for c in chunks}
        self.index.delete([key for key in stale if key not in current])
        self.repository.mark_indexed(agent, document_id, document.content_hash)

    def _known_agent(self, agent: str) -> None:
        if self.repository.get_agent(agent) is None:
            raise NotFound(f"unknown agent {agent!r} (agents come from AGENTS_DIR/<name>.toml)", code="unknown_agent")


def _managed_by_file(agent: str, document: StoredDocument, verb: str) -> Conflict:
    """The agent file brings its documents back on every start: they change only there."""
    return Conflict(
        f"{agent}/{document.document_id} comes from the agent file ({document.source}); {verb} it there",
        code="document_managed_by_file",
    )


def _document_hash(title: str, data: bytes) -> str:
    return content_hash(title.encode() + b"\0" + data)
