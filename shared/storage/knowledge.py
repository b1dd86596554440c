"""Agents, their knowledge documents and chunks in Postgres, with full-text search as the local retriever.

A document is one source of an agent's knowledge: an inline `[[knowledge]]` entry of its agent file
(`inline`), a file that entry names (`file`), or a file ingested with `python -m shared.knowledge`
(`ingest`). Its chunks are replaced as a whole, in one transaction, so a search never sees half of
an old and half of a new version. Postgres is the source of truth; an Azure AI Search index, when
configured, is a copy of these chunks. Where the server has pgvector (migration 0009), each chunk can
also keep its embedding, with the name of the model that made it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pgvector import Vector
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from shared.models import AgentProfile, AgentSource, KnowledgeDocument
from shared.storage.postgres import Pool, tenant_connection

Origin = Literal["inline", "file", "ingest"]

log = logging.getLogger(__name__)

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class KnowledgeHit:
    """A chunk a search found, with what an answer needs to cite it."""

    title: str
    body: str
    rank: float
    chunk_id: str = ""
    document_id: str = ""
    source: str = ""


@dataclass(frozen=True)
class ChunkText:
    """A stored chunk as an embeddings model reads it. `id` is the row's, new on every re-ingest, so an
    embedding made from an older version of the chunk never lands on the newer one."""

    id: int
    title: str
    body: str


@dataclass(frozen=True)
class NewDocument:
    """A document to store, with its chunks' texts in order."""

    agent: str
    document_id: str
    title: str
    source: str
    origin: Origin
    content_type: str
    content_hash: str
    size_bytes: int
    chunks: Sequence[str]
    blob_name: str | None = None


@dataclass(frozen=True)
class StoredDocument:
    agent: str
    document_id: str
    title: str
    source: str
    origin: Origin
    content_type: str
    blob_name: str | None
    content_hash: str
    size_bytes: int
    chunks: int
    indexed: bool
    updated_at: datetime


def profile_hash(profile: AgentProfile) -> str:
    return hashlib.sha256(profile.model_dump_json().encode()).hexdigest()


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def slug(text: str, limit: int = 100) -> str:
    """Lowercase letters, digits and dashes: safe as a document id, a blob name part and an AI Search key."""
    value = _NOT_SLUG.sub("-", text.lower()).strip("-")[:limit].strip("-")
    return value or "x" + hashlib.sha256(text.encode()).hexdigest()[:12]


def chunk_id(agent: str, document_id: str, position: int) -> str:
    """Stable across re-ingests of the same document: `agent=document=position` (`=` is in neither name)."""
    return f"{agent}={document_id}={position}"


def inline_document_ids(entries: Sequence[KnowledgeDocument]) -> list[str]:
    """`inline-<title>`, numbered when two inline entries share a title."""
    ids: list[str] = []
    for entry in entries:
        base = f"inline-{slug(entry.title, 90)}"
        candidate, n = base, 2
        while candidate in ids:
            candidate, n = f"{base}-{n}", n + 1
        ids.append(candidate)
    return ids


class KnowledgeRepository:
    """Reads and writes agents, knowledge documents and their chunks."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def upsert_agent(self, profile: AgentProfile) -> bool:
        """Store the agent from its file (a new version) and replace its inline knowledge; a no-op (False)
        when nothing changed, or when the name is an admin API agent's, live or deleted (never taken over
        nor brought back: the file is then ignored, with a warning).

        Documents from files (the agent file's `path` entries, ingested files) are not touched here.
        """
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                "SELECT content_hash, source FROM agents WHERE name = %s FOR UPDATE", (profile.name,)
            ).fetchone()
            if row is not None and row["source"] != "file":
                log.warning("agent file %s.toml ignored: the admin API made an agent of that name", profile.name)
                return False
            if row is not None and row["content_hash"] == profile_hash(profile):
                return False
            store_agent(conn, profile, source="file", actor=f"file:{profile.name}.toml", replaces="file")
        return True

    def get_agent(self, name: str, *, include_deleted: bool = False) -> AgentProfile | None:
        """The agent, unless deleted: a deleted agent starts no conversation, but the ones it has finish
        (`include_deleted`)."""
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                "SELECT profile FROM agents WHERE name = %s AND (%s OR deleted_at IS NULL)", (name, include_deleted)
            ).fetchone()
        return None if row is None else AgentProfile.model_validate(row["profile"])

    def replace_document(self, document: NewDocument) -> list[str]:
        """Store the document and its chunks in place of any earlier version; the earlier chunk ids."""
        with tenant_connection(self._pool) as conn:
            return _replace(conn, document, only_if_changed=False)

    def delete_document(self, agent: str, document_id: str) -> list[str]:
        """Remove the document and its chunks; the chunk ids it had."""
        with tenant_connection(self._pool) as conn:
            ids = _chunk_ids(conn, agent, document_id)
            conn.execute("DELETE FROM knowledge_documents WHERE agent = %s AND document_id = %s", (agent, document_id))
        return ids

    def get_document(self, agent: str, document_id: str) -> StoredDocument | None:
        documents = self._documents("d.agent = %s AND d.document_id = %s", (agent, document_id))
        return documents[0] if documents else None

    def list_documents(self, agent: str, origin: Origin | None = None) -> list[StoredDocument]:
        if origin is None:
            return self._documents("d.agent = %s", (agent,))
        return self._documents("d.agent = %s AND d.origin = %s", (agent, origin))

    def page_documents(self, agent: str, origin: Origin | None, after: str | None, limit: int) -> list[StoredDocument]:
        """At most `limit` of the agent's documents (of one origin, or all) in id order, after the id `after`."""
        return self._documents(
            "d.agent = %s AND (%s::text IS NULL OR d.origin = %s) AND d.document_id > %s",
            (agent, origin, origin, after or ""),
            limit=limit,
        )

    def unindexed_documents(self, agent: str) -> list[StoredDocument]:
        """Documents whose current version is not yet in the search index."""
        return self._documents("d.agent = %s AND d.indexed_hash IS DISTINCT FROM d.content_hash", (agent,))

    def mark_indexed(self, agent: str, document_id: str, indexed_hash: str) -> None:
        with tenant_connection(self._pool) as conn:
            conn.execute(
                "UPDATE knowledge_documents SET indexed_hash = %s WHERE agent = %s AND document_id = %s",
                (indexed_hash, agent, document_id),
            )

    def chunks(self, agent: str, document_id: str) -> list[KnowledgeHit]:
        """The document's chunks in order (rank 0)."""
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                """SELECT c.chunk_id, c.document_id, c.title, c.body, d.source
                   FROM knowledge_chunks c JOIN knowledge_documents d USING (tenant_id, agent, document_id)
                   WHERE c.agent = %s AND c.document_id = %s ORDER BY c.position""",
                (agent, document_id),
            ).fetchall()
        return [_hit(r, 0.0) for r in rows]

    def existing_chunk_ids(self, agent: str, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids the agent still has (a search index may lag behind a delete)."""
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                "SELECT chunk_id FROM knowledge_chunks WHERE agent = %s AND chunk_id = ANY(%s)", (agent, list(ids))
            ).fetchall()
        return {r["chunk_id"] for r in rows}

    def search(self, agent: str, query: str, limit: int = 3) -> list[KnowledgeHit]:
        """Chunks matching any meaningful word of the query, best first.

        Words are OR-ed (not AND-ed as plainto_tsquery would) so a spoken question with extra
        words still finds its passage; ranking rewards chunks that match more of them.
        """
        with tenant_connection(self._pool) as conn:
            rows: list[dict[str, Any]] = conn.execute(
                """WITH q AS (
                       SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS query
                       FROM unnest(to_tsvector('english', %(text)s))
                   )
                   SELECT c.chunk_id, c.document_id, c.title, c.body, d.source, ts_rank_cd(c.search, q.query) AS rank
                   FROM knowledge_chunks c JOIN knowledge_documents d USING (tenant_id, agent, document_id), q
                   WHERE c.agent = %(agent)s AND q.query IS NOT NULL AND c.search @@ q.query
                   ORDER BY rank DESC, c.id
                   LIMIT %(limit)s""",
                {"text": query, "agent": agent, "limit": limit},
            ).fetchall()
        return [_hit(r, float(r["rank"])) for r in rows]

    def has_vectors(self) -> bool:
        """Whether the chunks have an embedding column (the server had pgvector when migrations ran)."""
        with tenant_connection(self._pool) as conn:
            row = conn.execute(
                """SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'knowledge_chunks'::regclass AND attname = 'embedding' AND NOT attisdropped"""
            ).fetchone()
        return row is not None

    def chunks_to_embed(
        self, agent: str, model: str, *, document_id: str | None = None, after_id: int = 0, limit: int = 64
    ) -> list[ChunkText]:
        """The agent's chunks (or one document's) with no embedding by `model`, in row order after `after_id`."""
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                """SELECT id, title, body FROM knowledge_chunks
                   WHERE agent = %(agent)s AND (%(document)s::text IS NULL OR document_id = %(document)s)
                     AND (embedding IS NULL OR embedding_model IS DISTINCT FROM %(model)s) AND id > %(after)s
                   ORDER BY id LIMIT %(limit)s""",
                {"agent": agent, "document": document_id, "model": model, "after": after_id, "limit": limit},
            ).fetchall()
        return [ChunkText(r["id"], r["title"], r["body"]) for r in rows]

    def store_embeddings(self, model: str, embeddings: Sequence[tuple[int, Sequence[float]]]) -> None:
        """Keep each (chunk row id, vector); a row replaced since it was read is skipped (its id is gone)."""
        with tenant_connection(self._pool) as conn, conn.cursor() as cur:
            cur.executemany(
                "UPDATE knowledge_chunks SET embedding = %s, embedding_model = %s WHERE id = %s",
                [(Vector(list(vector)), model, row_id) for row_id, vector in embeddings],
            )

    def nearest(self, agent: str, model: str, vector: Sequence[float], limit: int = 3) -> list[KnowledgeHit]:
        """The agent's chunks nearest to `vector` by cosine distance, nearest first; rank is the cosine
        similarity. Only vectors of the same model and dimension are compared."""
        with tenant_connection(self._pool) as conn:
            rows: list[dict[str, Any]] = conn.execute(
                """SELECT c.chunk_id, c.document_id, c.title, c.body, d.source,
                          1 - (c.embedding <=> %(vector)s) AS similarity
                   FROM knowledge_chunks c JOIN knowledge_documents d USING (tenant_id, agent, document_id)
                   WHERE c.agent = %(agent)s AND c.embedding_model = %(model)s
                     AND vector_dims(c.embedding) = %(dims)s
                   ORDER BY c.embedding <=> %(vector)s, c.id
                   LIMIT %(limit)s""",
                {"vector": Vector(list(vector)), "agent": agent, "model": model, "dims": len(vector), "limit": limit},
            ).fetchall()
        return [_hit(r, float(r["similarity"])) for r in rows]

    def _documents(self, where: str, params: tuple[object, ...], limit: int | None = None) -> list[StoredDocument]:
        """Documents matching `where`, always one of the fixed clauses above (never caller text)."""
        with tenant_connection(self._pool) as conn:
            rows = conn.execute(
                f"""SELECT d.*, (SELECT count(*) FROM knowledge_chunks c
                                 WHERE c.tenant_id = d.tenant_id AND c.agent = d.agent
                                   AND c.document_id = d.document_id) AS chunk_count
                    FROM knowledge_documents d WHERE {where} ORDER BY d.document_id LIMIT %s""",
                (*params, limit),
            ).fetchall()
        return [
            StoredDocument(
                agent=r["agent"],
                document_id=r["document_id"],
                title=r["title"],
                source=r["source"],
                origin=r["origin"],
                content_type=r["content_type"],
                blob_name=r["blob_name"],
                content_hash=r["content_hash"],
                size_bytes=r["size_bytes"],
                chunks=r["chunk_count"],
                indexed=r["indexed_hash"] == r["content_hash"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]


_REPLACES = {
    "file": "agents.source = 'file'",
    "deleted": "agents.deleted_at IS NOT NULL",
    "live_api": "agents.source = 'api' AND agents.deleted_at IS NULL",
}
"""Which existing row of the same name `store_agent` may replace: a file's, a deleted one, a live API one."""


def store_agent(
    conn: Connection[DictRow],
    profile: AgentProfile,
    *,
    source: AgentSource,
    actor: str,
    replaces: Literal["file", "deleted", "live_api"],
) -> int | None:
    """In the caller's transaction: write the agent as its next version (live), keep that version in
    `agent_versions` and replace its inline knowledge; the version, or None when a row of that name
    exists that `replaces` does not allow replacing (nothing is written then)."""
    row = conn.execute(
        f"""INSERT INTO agents (name, profile, content_hash, source, version) VALUES (%s, %s, %s, %s, 1)
            ON CONFLICT (tenant_id, name) DO UPDATE
            SET profile = EXCLUDED.profile, content_hash = EXCLUDED.content_hash, source = EXCLUDED.source,
                version = agents.version + 1, deleted_at = NULL, updated_at = now()
            WHERE {_REPLACES[replaces]}
            RETURNING version""",
        (profile.name, Jsonb(profile.model_dump(mode="json")), profile_hash(profile), source),
    ).fetchone()
    if row is None:
        return None
    version = int(row["version"])
    conn.execute(
        "INSERT INTO agent_versions (name, version, profile, created_by) VALUES (%s, %s, %s, %s)",
        (profile.name, version, Jsonb(profile.model_dump(mode="json")), actor),
    )
    _replace_inline_knowledge(conn, profile, f"{profile.name}.toml" if source == "file" else f"api:{profile.name}")
    return version


def _replace_inline_knowledge(conn: Connection[DictRow], profile: AgentProfile, source: str) -> None:
    ids = inline_document_ids(profile.knowledge)
    inline = [(doc_id, e) for doc_id, e in zip(ids, profile.knowledge, strict=True) if e.text]
    conn.execute(
        "DELETE FROM knowledge_documents WHERE agent = %s AND origin = 'inline' AND NOT document_id = ANY(%s)",
        (profile.name, [doc_id for doc_id, _ in inline]),
    )
    for doc_id, entry in inline:
        text = entry.text.encode()
        _replace(
            conn,
            NewDocument(
                agent=profile.name,
                document_id=doc_id,
                title=entry.title,
                source=source,
                origin="inline",
                content_type="text/plain",
                content_hash=content_hash(entry.title.encode() + b"\0" + text),
                size_bytes=len(text),
                chunks=[entry.text],
            ),
            only_if_changed=True,
        )


def _hit(row: dict[str, Any], rank: float) -> KnowledgeHit:
    return KnowledgeHit(
        title=row["title"],
        body=row["body"],
        rank=rank,
        chunk_id=row["chunk_id"],
        document_id=row["document_id"],
        source=row["source"],
    )


def _chunk_ids(conn: Connection[DictRow], agent: str, document_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT chunk_id FROM knowledge_chunks WHERE agent = %s AND document_id = %s ORDER BY position",
        (agent, document_id),
    ).fetchall()
    return [r["chunk_id"] for r in rows]


def _replace(conn: Connection[DictRow], document: NewDocument, *, only_if_changed: bool) -> list[str]:
    if only_if_changed:
        row = conn.execute(
            "SELECT content_hash FROM knowledge_documents WHERE agent = %s AND document_id = %s",
            (document.agent, document.document_id),
        ).fetchone()
        if row is not None and row["content_hash"] == document.content_hash:
            return []
    previous = _chunk_ids(conn, document.agent, document.document_id)
    conn.execute(
        """INSERT INTO knowledge_documents
               (agent, document_id, title, source, origin, content_type, blob_name, content_hash, size_bytes)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (tenant_id, agent, document_id) DO UPDATE
           SET title = EXCLUDED.title, source = EXCLUDED.source, origin = EXCLUDED.origin,
               content_type = EXCLUDED.content_type, blob_name = EXCLUDED.blob_name,
               content_hash = EXCLUDED.content_hash, size_bytes = EXCLUDED.size_bytes,
               indexed_hash = NULL, updated_at = now()""",
        (
            document.agent,
            document.document_id,
            document.title,
            document.source,
            document.origin,
            document.content_type,
            document.blob_name,
            document.content_hash,
            document.size_bytes,
        ),
    )
    conn.execute(
        "DELETE FROM knowledge_chunks WHERE agent = %s AND document_id = %s", (document.agent, document.document_id)
    )
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO knowledge_chunks (agent, document_id, chunk_id, position, title, body)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            [
                (
                    document.agent,
                    document.document_id,
                    chunk_id(document.agent, document.document_id, i),
                    i,
                    document.title,
                    text,
                )
                for i, text in enumerate(document.chunks)
            ],
        )
    return previous
