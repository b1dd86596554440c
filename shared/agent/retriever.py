"""The knowledge retriever port's adapters: Postgres full-text search, the same with pgvector nearest
neighbours when an embeddings model is configured and the database has pgvector, and Azure AI Search
when configured.

Every retrieved Document carries what an answer needs to cite it, the same from either adapter:
`chunk_id` (stable across re-ingests of an unchanged position), `document_id`, `title` and `source`
(the file name, or the agent file for inline entries).
"""

from __future__ import annotations

import logging

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from shared.knowledge.azure_search import AzureSearchIndex, IndexMismatch
from shared.knowledge.vectors import ChunkVectors, reciprocal_rank_fusion
from shared.storage.knowledge import KnowledgeHit, KnowledgeRepository

log = logging.getLogger(__name__)


def cited(hit: KnowledgeHit) -> Document:
    return Document(
        page_content=hit.body,
        metadata={
            "chunk_id": hit.chunk_id,
            "document_id": hit.document_id,
            "title": hit.title,
            "source": hit.source,
            "rank": hit.rank,
        },
    )


class PostgresKnowledgeRetriever(BaseRetriever):
    """Top passages of one agent's knowledge for a query, by Postgres full-text search."""

    repository: KnowledgeRepository
    agent: str
    limit: int = 2

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [cited(hit) for hit in self.repository.search(self.agent, query, self.limit)]


class PostgresHybridRetriever(BaseRetriever):
    """Top passages of one agent's knowledge: Postgres full-text ranking and pgvector nearest neighbours
    (cosine), fused by reciprocal rank; full-text search alone if the embeddings or the vector query
    fail, so the caller still gets an answer.

    Each list brings `candidates` chunks to the fusion, so a chunk one list ranks low can still win.
    """

    repository: KnowledgeRepository
    vectors: ChunkVectors
    agent: str
    limit: int = 2
    candidates: int = 20

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if not query.strip():
            return []
        import psycopg
        from azure.core.exceptions import AzureError
        from openai import APIError

        depth = max(self.candidates, self.limit)
        text = self.repository.search(self.agent, query, depth)
        try:
            near = self.vectors.nearest(self.agent, query, depth)
        except (AzureError, APIError, psycopg.Error) as error:
            log.warning("agent %s: vector search failed (%s); answering from full-text search", self.agent, error)
            return [cited(hit) for hit in text[: self.limit]]
        return [cited(hit) for hit in reciprocal_rank_fusion([text, near])[: self.limit]]


class AzureSearchRetriever(BaseRetriever):
    """Top passages by a hybrid Azure AI Search query; Postgres full-text search if the service or the
    embeddings fail, so the caller still gets an answer.

    Hits are checked against Postgres: a chunk deleted there is never cited, even while the index lags.
    """

    index: AzureSearchIndex
    embeddings: Embeddings
    repository: KnowledgeRepository
    agent: str
    limit: int = 2
    fallback: BaseRetriever

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if not query.strip():
            return []
        from azure.core.exceptions import AzureError
        from openai import APIError

        try:
            vector = self.embeddings.embed_query(query)
            hits = self.index.search(self.agent, query, vector, self.limit)
        except (AzureError, APIError, IndexMismatch) as error:
            log.warning("agent %s: Azure AI Search failed (%s); answering from full-text search", self.agent, error)
            return self.fallback.invoke(query, {"callbacks": run_manager.get_child()})
        kept = self.repository.existing_chunk_ids(self.agent, [h.chunk_id for h in hits])
        return [cited(hit) for hit in hits if hit.chunk_id in kept]
