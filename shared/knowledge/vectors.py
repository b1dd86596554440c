"""Chunk embeddings kept beside the chunks in Postgres (pgvector), for the local hybrid retriever.

Used when an embeddings model is configured, Azure AI Search is not, and the database has the embedding
column (migration 0009 adds it only where the server has pgvector). Each chunk is embedded as its title
and body, the same text Azure AI Search gets; the model's name is stored with the vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# At run time, not only for type checking: the retrievers are pydantic models holding a ChunkVectors,
# and pydantic resolves its fields. Whoever holds one has loaded LangChain already.
from langchain_core.embeddings import Embeddings

from shared.storage.knowledge import KnowledgeHit, KnowledgeRepository


@dataclass(frozen=True)
class ChunkVectors:
    repository: KnowledgeRepository
    embeddings: Embeddings
    model: str
    batch: int = 64

    def embed_pending(self, agent: str, document_id: str | None = None) -> int:
        """Embed the agent's chunks (or one document's) that have no vector by this model; how many.

        A batch is embedded and stored before the next is read, so a failure keeps what was done.
        """
        done, after = 0, 0
        while chunks := self.repository.chunks_to_embed(
            agent, self.model, document_id=document_id, after_id=after, limit=self.batch
        ):
            vectors = self.embeddings.embed_documents([f"{c.title}\n{c.body}" for c in chunks])
            self.repository.store_embeddings(self.model, [(c.id, v) for c, v in zip(chunks, vectors, strict=True)])
            done, after = done + len(chunks), chunks[-1].id
        return done

    def nearest(self, agent: str, question: str, limit: int) -> list[KnowledgeHit]:
        """The agent's chunks nearest to the question's embedding (this calls the embeddings model)."""
        return self.repository.nearest(agent, self.model, self.embeddings.embed_query(question), limit)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[KnowledgeHit]], k: int = 60) -> list[KnowledgeHit]:
    """One ranking from several, each best first: a chunk scores the sum of 1 / (k + its place) over the
    lists it is in.

    Reciprocal-rank fusion (Cormack et al., 2009; what Azure AI Search uses for hybrid queries) needs
    no common scale between full-text ranks and cosine similarities. Hits of one list with equal rank
    share a place (full-text search often ranks several chunks the same), so another list decides
    between them; equal fused scores keep the order of the earlier lists. The fused score is each
    hit's rank.
    """
    scores: dict[str, float] = {}
    first: dict[str, tuple[int, int, KnowledgeHit]] = {}
    for which, ranking in enumerate(rankings):
        place = 0
        for position, hit in enumerate(ranking, start=1):
            if position == 1 or hit.rank != ranking[position - 2].rank:
                place = position
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + place)
            first.setdefault(hit.chunk_id, (which, position, hit))
    ordered = sorted(scores, key=lambda chunk: (-scores[chunk], first[chunk][:2]))
    return [_with_rank(first[chunk][2], scores[chunk]) for chunk in ordered]


def _with_rank(hit: KnowledgeHit, rank: float) -> KnowledgeHit:
    return KnowledgeHit(hit.title, hit.body, rank, hit.chunk_id, hit.document_id, hit.source)
