"""Knowledge retrieval with pgvector: full-text ranking fused with nearest neighbours, in an embedded Postgres
(the pgserver wheel, Postgres 16 + pgvector) started here; embeddings through the `openai` SDK against the
fake in tests/fakes/. On a server without pgvector (the machine's Postgres) nothing changes.

The fake embeds a text as a hashed bag of its words. Postgres's `english` stemmer makes "universe" and
"university" the same lexeme, so full-text search ranks a chunk about either the same; the bag of words
keeps them apart, and that is what the vector list adds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from devhost import standins
from shared.agent.catalog import load_agent_file
from shared.agent.retriever import PostgresHybridRetriever, PostgresKnowledgeRetriever
from shared.config import REPOSITORY_ROOT, Settings
from shared.knowledge.embeddings import embeddings_for, embeddings_model_name
from shared.knowledge.library import KnowledgeLibrary
from shared.knowledge.vectors import ChunkVectors
from shared.services import Services
from shared.storage.blobs import BlobStore, blob_service
from shared.storage.knowledge import KnowledgeRepository
from shared.storage.migrations import apply_migrations
from shared.storage.postgres import Pool, open_pool
from tests.conftest import _with_database
from tests.fakes.openai_server import FakeOpenAIServer, ServerError, bag_of_words_vector

pytestmark = pytest.mark.timeout(180)

DEMO = REPOSITORY_ROOT / "agents" / "demo.toml"
UNIVERSE = "The universe is vast and old."
UNIVERSITY = "The university is vast and old."
QUESTION = "Where is the university?"


@pytest.fixture(scope="module")
def embedded_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """Creates databases of their own on an embedded Postgres with pgvector, started for this module."""
    server = standins.start_postgres(tmp_path_factory.mktemp("pgvector"))
    count = 0

    def create() -> str:
        nonlocal count
        count += 1
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "knowledge_vectors_{count}"')
        return _with_database(server.url, f"knowledge_vectors_{count}")

    yield create
    server.stop()


@pytest.fixture(scope="module")
def database_url(embedded_postgres: Callable[[], str]) -> str:
    url = embedded_postgres()
    apply_migrations(url)
    return url


@pytest.fixture(scope="module")
def pool(database_url: str) -> Iterator[Pool]:
    pool = open_pool(database_url, 2)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def repository(pool: Pool) -> KnowledgeRepository:
    repository = KnowledgeRepository(pool)
    repository.upsert_agent(load_agent_file(DEMO).model_copy(update={"name": "campus", "knowledge": []}))
    return repository


@pytest.fixture(scope="module")
def openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def settings(openai: FakeOpenAIServer) -> Settings:
    return Settings(openai_base_url=f"{openai.url}/v1", llm_max_retries=0)


@pytest.fixture(scope="module")
def vectors(repository: KnowledgeRepository, settings: Settings) -> ChunkVectors:
    embeddings = embeddings_for(settings)
    assert embeddings is not None
    return ChunkVectors(repository, embeddings, embeddings_model_name(settings))


@pytest.fixture(scope="module")
def library(repository: KnowledgeRepository, vectors: ChunkVectors, blob_connection_string: str) -> KnowledgeLibrary:
    sources = BlobStore(blob_service(blob_connection_string, ""), "knowledge")
    return KnowledgeLibrary(repository, sources, Settings(), vectors=vectors)


@pytest.fixture(scope="module")
def campus(library: KnowledgeLibrary) -> KnowledgeLibrary:
    """Two documents full-text search cannot tell apart for QUESTION; the universe one is stored first."""
    library.ingest("campus", "universe.txt", UNIVERSE.encode(), title="Campus notes")
    library.ingest("campus", "university.txt", UNIVERSITY.encode(), title="Campus notes")
    return library


def stored_embeddings(database_url: str, agent: str) -> dict[str, tuple[str | None, list[float] | None]]:
    """chunk_id -> (embedding_model, embedding), read over a connection of its own."""
    from pgvector.psycopg import register_vector

    with psycopg.connect(database_url) as conn:
        register_vector(conn)
        rows = conn.execute(
            "SELECT chunk_id, embedding_model, embedding FROM knowledge_chunks WHERE agent = %s", (agent,)
        ).fetchall()
    return {chunk: (model, None if vector is None else vector.to_list()) for chunk, model, vector in rows}


def chunk_ids(retriever: PostgresKnowledgeRetriever | PostgresHybridRetriever, question: str) -> list[str]:
    return [d.metadata["chunk_id"] for d in retriever.invoke(question)]


def test_the_migration_adds_pgvector_and_an_embedding_column_where_the_server_has_it(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            """SELECT column_name, udt_name FROM information_schema.columns
               WHERE table_name = 'knowledge_chunks' AND column_name LIKE 'embedding%' ORDER BY column_name"""
        ).fetchall()
        extensions = conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchall()
    assert columns == [("embedding", "vector"), ("embedding_model", "text")]
    assert extensions == [("vector",)]


def test_ingested_chunks_are_stored_with_the_embedding_of_their_title_and_text(
    campus: KnowledgeLibrary, database_url: str, openai: FakeOpenAIServer
) -> None:
    stored = stored_embeddings(database_url, "campus")

    assert set(stored) == {"campus=universe-txt=0", "campus=university-txt=0"}
    model, vector = stored["campus=university-txt=0"]
    assert model == "openai/text-embedding-3-small"
    assert vector is not None
    expected = bag_of_words_vector(f"Campus notes\n{UNIVERSITY}", openai.embedding_dimensions)
    assert vector == pytest.approx(expected, abs=1e-6)
    assert any(r.body["input"] == [f"Campus notes\n{UNIVERSITY}"] for r in openai.embedding_requests)


def test_vector_similarity_decides_between_chunks_full_text_search_ranks_the_same(
    campus: KnowledgeLibrary, vectors: ChunkVectors, openai: FakeOpenAIServer
) -> None:
    dims = openai.embedding_dimensions
    question = bag_of_words_vector(QUESTION, dims)
    cosine = [
        sum(q * c for q, c in zip(question, bag_of_words_vector(f"Campus notes\n{text}", dims), strict=True))
        for text in (UNIVERSE, UNIVERSITY)
    ]
    assert cosine[0] < cosine[1], "precondition: the fake's vectors put the question nearer the university"
    full_text = PostgresKnowledgeRetriever(repository=campus.repository, agent="campus", limit=2)
    hybrid = PostgresHybridRetriever(repository=campus.repository, vectors=vectors, agent="campus", limit=2)

    ranks = {h.chunk_id: h.rank for h in campus.repository.search("campus", QUESTION)}
    assert len(set(ranks.values())) == 1, "precondition: full-text search ranks both chunks the same"
    assert chunk_ids(full_text, QUESTION) == ["campus=universe-txt=0", "campus=university-txt=0"]
    found = hybrid.invoke(QUESTION)

    assert [d.metadata["chunk_id"] for d in found] == ["campus=university-txt=0", "campus=universe-txt=0"]
    assert found[0].page_content == UNIVERSITY
    assert {k: v for k, v in found[0].metadata.items() if k != "rank"} == {
        "chunk_id": "campus=university-txt=0",
        "document_id": "university-txt",
        "title": "Campus notes",
        "source": "university.txt",
    }
    assert found[0].metadata["rank"] == pytest.approx(2 / 61)
    nearest = vectors.nearest("campus", QUESTION, 2)
    assert [h.chunk_id for h in nearest] == ["campus=university-txt=0", "campus=universe-txt=0"]
    assert nearest[0].rank == pytest.approx(cosine[1], abs=1e-5)


def test_an_embeddings_failure_at_question_time_answers_from_full_text_search(
    campus: KnowledgeLibrary, vectors: ChunkVectors, openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    hybrid = PostgresHybridRetriever(repository=campus.repository, vectors=vectors, agent="campus", limit=2)
    full_text = PostgresKnowledgeRetriever(repository=campus.repository, agent="campus", limit=2)
    asked = len(openai.embedding_requests)
    openai.script_embeddings(ServerError())

    with caplog.at_level(logging.WARNING, logger="shared.agent.retriever"):
        answered = hybrid.invoke(QUESTION)

    assert [(d.page_content, d.metadata) for d in answered] == [
        (d.page_content, d.metadata) for d in full_text.invoke(QUESTION)
    ]
    assert len(openai.embedding_requests) == asked + 1, "one failed call, no retries (llm_max_retries=0)"
    assert "agent campus: vector search failed" in caplog.text
    assert chunk_ids(hybrid, QUESTION)[0] == "campus=university-txt=0", "the next question is hybrid again"


def test_a_document_the_embeddings_failed_for_is_stored_and_embedded_by_the_catch_up(
    campus: KnowledgeLibrary, database_url: str, openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    openai.script_embeddings(ServerError())
    with caplog.at_level(logging.ERROR, logger="shared.knowledge.library"):
        stored = campus.ingest("campus", "library.txt", b"The library opens at nine.", title="Library")

    assert stored.chunks == 1
    assert "agent campus: document library-txt stored without embeddings" in caplog.text
    assert stored_embeddings(database_url, "campus")["campus=library-txt=0"] == (None, None)
    full_text = PostgresKnowledgeRetriever(repository=campus.repository, agent="campus")
    assert chunk_ids(full_text, "when does the library open") == ["campus=library-txt=0"]

    assert campus.embed_pending("campus") == 1
    model, vector = stored_embeddings(database_url, "campus")["campus=library-txt=0"]
    assert model == "openai/text-embedding-3-small"
    assert vector is not None
    assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-5)
    assert campus.embed_pending("campus") == 0


def test_the_app_embeds_agent_file_chunks_on_first_use_and_retrieves_hybrid(
    embedded_postgres: Callable[[], str], blob_connection_string: str, openai: FakeOpenAIServer, tmp_path: Path
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "faq.md").write_text("# FAQ\n\nWe accept UPI and cards.", "utf-8")
    (tmp_path / "filer.toml").write_text(
        'name = "filer"\ndisplay_name = "F"\ngreeting = "hi"\n'
        '[[knowledge]]\ntitle = "Payments"\npath = "docs/faq.md"\n'
        '[[knowledge]]\ntitle = "Hours"\ntext = "Open at 9."\n',
        "utf-8",
    )
    database_url = embedded_postgres()
    common = {"database_url": database_url, "blob_connection_string": blob_connection_string, "agents_dir": tmp_path}
    before = Services(Settings.model_validate(common))
    try:
        assert type(before.retriever("filer")) is PostgresKnowledgeRetriever, "no embeddings model: full-text"
    finally:
        before.pool.close()
    assert set(stored_embeddings(database_url, "filer").values()) == {(None, None)}

    configured = Services(Settings.model_validate(common | {"openai_base_url": f"{openai.url}/v1"}))
    try:
        retriever = configured.retriever("filer")
        assert type(retriever) is PostgresHybridRetriever
        stored = stored_embeddings(database_url, "filer")
        assert set(stored) == {"filer=faq-md=0", "filer=inline-hours=0"}
        assert all(model == "openai/text-embedding-3-small" and v for model, v in stored.values())
        found = retriever.invoke("do you accept upi")
        assert found[0].metadata["chunk_id"] == "filer=faq-md=0"
        assert found[0].metadata["source"] == "faq.md"
    finally:
        configured.pool.close()


def test_without_pgvector_on_the_server_the_migration_adds_nothing_and_retrieval_stays_full_text(
    new_database: Callable[[], str], blob_connection_string: str, openai: FakeOpenAIServer
) -> None:
    database_url = new_database()
    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
            pytest.skip("the test server has pgvector (no machine Postgres: conftest started an embedded one)")
    asked = len(openai.embedding_requests)
    services = Services(
        Settings(
            database_url=database_url,
            blob_connection_string=blob_connection_string,
            openai_base_url=f"{openai.url}/v1",
            llm_max_retries=0,
        )
    )
    try:
        retriever = services.retriever("demo")
        assert type(retriever) is PostgresKnowledgeRetriever
        assert retriever.invoke("do you have vegan options")[0].metadata["chunk_id"] == "demo=inline-menu=0"
        assert services.chunk_vectors is None
    finally:
        services.pool.close()
    with psycopg.connect(database_url) as conn:
        applied = conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY migration_id").fetchall()
        columns = conn.execute(
            """SELECT column_name FROM information_schema.columns
               WHERE table_name = 'knowledge_chunks' AND column_name LIKE 'embedding%'"""
        ).fetchall()
        extensions = conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchall()
    assert ("0009_knowledge_vectors",) in applied
    assert (columns, extensions) == ([], [])
    assert len(openai.embedding_requests) == asked, "nothing is embedded where nothing can be stored"
