"""The knowledge retriever port's local adapter: Postgres full-text search as a LangChain retriever."""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from shared.storage.knowledge import KnowledgeRepository


class PostgresKnowledgeRetriever(BaseRetriever):
    """Top passages of one agent's knowledge for a query."""

    repository: KnowledgeRepository
    agent: str
    limit: int = 2

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(page_content=hit.body, metadata={"title": hit.title, "rank": hit.rank})
            for hit in self.repository.search(self.agent, query, self.limit)
        ]
