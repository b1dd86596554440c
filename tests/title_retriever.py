"""An in-memory retriever for agent tests: a stand-in for full-text search, with no database."""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from shared.agent.intents import words


class TitleRetriever(BaseRetriever):
    """The documents whose title shares a word with the query."""

    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        asked = {w[:4] for w in words(query)}
        return [d for d in self.documents if asked & {w[:4] for w in words(d.metadata["title"])}]
