"""Azure AI Search as the knowledge index: one index for every agent, hybrid (text + vector) queries.

The index is created by the app on first upload, its vector field sized to the embeddings it is
given. One index serves every tenant: each document carries its `tenant` (the current one when it is
uploaded) and every query filters on it and on `agent`, so a tenant's query never sees another's
chunks. A document's key is `tenant=chunk_id` (two tenants may both have `demo=faq-md=0`); its
`chunk_id` field is the id Postgres holds (`agent=document=position`), so a hit is cited exactly as the
local retriever cites it. An index made before tenants (keyed by `chunk_id`, no `tenant` field) is
refused: point AZURE_SEARCH_INDEX at a new one and the next start uploads every chunk again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.config import Settings
from shared.storage.knowledge import KnowledgeHit
from shared.tenancy import current_tenant

if TYPE_CHECKING:
    from azure.search.documents import SearchClient
    from azure.search.documents.indexes import SearchIndexClient

VECTOR_FIELD = "content_vector"
VECTOR_PROFILE = "knowledge-vectors"
HNSW_CONFIGURATION = "knowledge-hnsw"
KEY_FIELD = "key"
RETRIEVED_FIELDS = ["chunk_id", "agent", "document_id", "title", "source", "content"]


class IndexMismatch(RuntimeError):
    """The index exists with a vector size other than the embeddings' (a new embeddings model needs a new
    index), or without tenants."""


@dataclass(frozen=True)
class IndexedChunk:
    chunk_id: str
    agent: str
    document_id: str
    position: int
    title: str
    source: str
    content: str


def odata_string(value: str) -> str:
    """An OData string literal: quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def document_key(chunk_id: str) -> str:
    """The index key of the current tenant's chunk: unique across tenants (`=` is in no tenant id)."""
    return f"{current_tenant()}={chunk_id}"


class AzureSearchIndex:
    """The knowledge index on an Azure AI Search service."""

    def __init__(self, index_client: SearchIndexClient, search_client: SearchClient, index_name: str) -> None:
        self._indexes = index_client
        self._search = search_client
        self._name = index_name
        self._dimensions: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureSearchIndex:
        """An admin key when configured, else Microsoft Entra ID (managed identity in Azure)."""
        from azure.core.credentials import AzureKeyCredential, TokenCredential
        from azure.search.documents import SearchClient
        from azure.search.documents.indexes import SearchIndexClient

        key = settings.azure_search_api_key.get_secret_value()
        credential: AzureKeyCredential | TokenCredential
        if key:
            credential = AzureKeyCredential(key)
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        options: dict[str, Any] = {"retry_total": settings.azure_search_max_retries, "retry_backoff_factor": 0.5}
        endpoint, name = settings.azure_search_endpoint, settings.azure_search_index
        return cls(
            SearchIndexClient(endpoint, credential, **options),
            SearchClient(endpoint, name, credential, **options),
            name,
        )

    def ensure(self, dimensions: int) -> None:
        """Create the index if it is missing; refuse one whose vectors have another size."""
        if self._dimensions == dimensions:
            return
        from azure.core.exceptions import ResourceNotFoundError

        try:
            existing = self._indexes.get_index(self._name)
        except ResourceNotFoundError:
            self._indexes.create_or_update_index(self.definition(dimensions))
        else:
            keys = [f.name for f in existing.fields if f.key]
            if keys != [KEY_FIELD] or "tenant" not in {f.name for f in existing.fields}:
                raise IndexMismatch(f"index {self._name!r} has no tenants (made before them): use a new index")
            sizes = [f.vector_search_dimensions for f in existing.fields if f.name == VECTOR_FIELD]
            if sizes != [dimensions]:
                raise IndexMismatch(
                    f"index {self._name!r} holds vectors of size {sizes}, the embeddings have {dimensions}"
                )
        self._dimensions = dimensions

    def definition(self, dimensions: int) -> Any:
        from azure.search.documents.indexes.models import (
            HnswAlgorithmConfiguration,
            SearchableField,
            SearchField,
            SearchFieldDataType,
            SearchIndex,
            SimpleField,
            VectorSearch,
            VectorSearchProfile,
        )

        return SearchIndex(
            name=self._name,
            fields=[
                SimpleField(name=KEY_FIELD, type=SearchFieldDataType.STRING, key=True),
                SimpleField(name="tenant", type=SearchFieldDataType.STRING, filterable=True),
                SimpleField(name="chunk_id", type=SearchFieldDataType.STRING, filterable=True),
                SimpleField(name="agent", type=SearchFieldDataType.STRING, filterable=True),
                SimpleField(name="document_id", type=SearchFieldDataType.STRING, filterable=True),
                SimpleField(name="position", type=SearchFieldDataType.INT32, sortable=True),
                SearchableField(name="title", type=SearchFieldDataType.STRING),
                SimpleField(name="source", type=SearchFieldDataType.STRING, filterable=True),
                SearchableField(name="content", type=SearchFieldDataType.STRING),
                SearchField(
                    name=VECTOR_FIELD,
                    type="Collection(Edm.Single)",
                    searchable=True,
                    retrievable=False,
                    vector_search_dimensions=dimensions,
                    vector_search_profile_name=VECTOR_PROFILE,
                ),
            ],
            vector_search=VectorSearch(
                algorithms=[HnswAlgorithmConfiguration(name=HNSW_CONFIGURATION)],
                profiles=[VectorSearchProfile(name=VECTOR_PROFILE, algorithm_configuration_name=HNSW_CONFIGURATION)],
            ),
        )

    def upload(self, chunks: Sequence[IndexedChunk], vectors: Sequence[Sequence[float]]) -> None:
        """Add or replace these chunks of the current tenant (merge-or-upload by key); every one must be accepted."""
        if not chunks:
            return
        self.ensure(len(vectors[0]))
        tenant = current_tenant()
        documents = [
            {
                KEY_FIELD: document_key(c.chunk_id),
                "tenant": tenant,
                "chunk_id": c.chunk_id,
                "agent": c.agent,
                "document_id": c.document_id,
                "position": c.position,
                "title": c.title,
                "source": c.source,
                "content": c.content,
                VECTOR_FIELD: list(v),
            }
            for c, v in zip(chunks, vectors, strict=True)
        ]
        self._check(self._search.merge_or_upload_documents(documents))

    def delete(self, chunk_ids: Sequence[str]) -> None:
        """Remove these chunks of the current tenant."""
        if chunk_ids:
            self._check(self._search.delete_documents([{KEY_FIELD: document_key(c)} for c in chunk_ids]))

    def search(self, agent: str, text: str, vector: Sequence[float], top: int) -> list[KnowledgeHit]:
        """Hybrid query: the text and its vector, both kept to the current tenant's chunks of this agent,
        fused by the service (RRF)."""
        from azure.search.documents.models import VectorizedQuery

        results = self._search.search(
            search_text=text,
            filter=f"tenant eq {odata_string(current_tenant())} and agent eq {odata_string(agent)}",
            vector_queries=[VectorizedQuery(vector=list(vector), k_nearest_neighbors=top, fields=VECTOR_FIELD)],
            select=RETRIEVED_FIELDS,
            top=top,
        )
        return [
            KnowledgeHit(
                title=r["title"],
                body=r["content"],
                rank=float(r.get("@search.score") or 0.0),
                chunk_id=r["chunk_id"],
                document_id=r["document_id"],
                source=r["source"],
            )
            for r in results
        ]

    @staticmethod
    def _check(results: Sequence[Any]) -> None:
        failed = [f"{r.key}: {r.error_message} ({r.status_code})" for r in results if not r.succeeded]
        if failed:
            raise RuntimeError("Azure AI Search refused chunks: " + "; ".join(failed))
