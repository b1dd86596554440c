"""Knowledge documents against real Postgres and Azurite; Azure AI Search and embeddings through the vendors'
SDKs against the fakes in tests/fakes/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared import activities
from shared.agent.catalog import AgentFileError, load_agent_file
from shared.agent.retriever import AzureSearchRetriever, PostgresKnowledgeRetriever
from shared.config import REPOSITORY_ROOT, Settings
from shared.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from shared.knowledge.azure_search import AzureSearchIndex
from shared.knowledge.embeddings import embeddings_for
from shared.knowledge.library import KnowledgeLibrary
from shared.services import Services
from shared.storage.blobs import BlobStore, blob_service
from shared.storage.knowledge import KnowledgeRepository
from shared.storage.migrations import apply_migrations
from shared.storage.postgres import Pool, open_pool
from shared.tenancy import tenant_scope
from tests.conftest import AppServices
from tests.fakes.openai_server import Answer, FakeOpenAIServer
from tests.fakes.search_server import FakeSearchServer, Throttled, Unavailable
from tests.pdf_files import pdf_bytes
from tests.turn_inputs import caller_turn

DEMO = REPOSITORY_ROOT / "agents" / "demo.toml"


@pytest.fixture(scope="module")
def database_url(new_database: Callable[[], str]) -> str:
    url = new_database()
    apply_migrations(url)
    return url


@pytest.fixture(scope="module")
def pool(database_url: str) -> Iterator[Pool]:
    pool = open_pool(database_url, 4)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def repository(pool: Pool) -> KnowledgeRepository:
    repository = KnowledgeRepository(pool)
    repository.upsert_agent(load_agent_file(DEMO))
    other = load_agent_file(DEMO).model_copy(update={"name": "other", "knowledge": []})
    repository.upsert_agent(other)
    return repository


@pytest.fixture(scope="module")
def sources(blob_connection_string: str) -> BlobStore:
    return BlobStore(blob_service(blob_connection_string, ""), "knowledge")


@pytest.fixture
def library(repository: KnowledgeRepository, sources: BlobStore) -> KnowledgeLibrary:
    return KnowledgeLibrary(repository, sources, Settings(knowledge_chunk_characters=200, knowledge_chunk_overlap=20))


def retrieve(repository: KnowledgeRepository, agent: str, question: str, limit: int = 3) -> list[dict[str, object]]:
    documents = PostgresKnowledgeRetriever(repository=repository, agent=agent, limit=limit).invoke(question)
    assert all(float(d.metadata["rank"]) > 0 for d in documents)
    return [{**{k: v for k, v in d.metadata.items() if k != "rank"}, "text": d.page_content} for d in documents]


def test_text_markdown_html_and_pdf_documents_answer_with_citable_chunks(
    library: KnowledgeLibrary, tmp_path: Path
) -> None:
    (tmp_path / "wifi.txt").write_text("The wifi password is chai1234 and it works in the garden too.", "utf-8")
    (tmp_path / "Catering Menu.md").write_text("# Catering\n\nWe cater weddings with paneer tikka platters.", "utf-8")
    (tmp_path / "events.html").write_text(
        "<html><head><title>Live music</title><script>var jazz = 1;</script></head>"
        "<body><h1>Events</h1><p>A sitar quartet plays every Friday evening.</p></body></html>",
        "utf-8",
    )
    (tmp_path / "allergens.pdf").write_bytes(pdf_bytes(["Our samosas contain gluten and peanuts."], "Allergens"))

    stored = [library.ingest_file("demo", tmp_path / name) for name in sorted(os.listdir(tmp_path))]

    assert [(d.document_id, d.title, d.content_type) for d in stored] == [
        ("catering-menu-md", "Catering", "text/markdown"),
        ("allergens-pdf", "Allergens", "application/pdf"),
        ("events-html", "Live music", "text/html"),
        ("wifi-txt", "wifi", "text/plain"),
    ]
    repository = library.repository
    assert retrieve(repository, "demo", "which allergens are in the samosas")[0] == {
        "chunk_id": "demo=allergens-pdf=0",
        "document_id": "allergens-pdf",
        "title": "Allergens",
        "source": "allergens.pdf",
        "text": "Our samosas contain gluten and peanuts.",
    }
    assert retrieve(repository, "demo", "do you cater weddings")[0]["source"] == "Catering Menu.md"
    sitar = retrieve(repository, "demo", "when does the sitar quartet play")[0]
    assert sitar["text"] == "Events\nA sitar quartet plays every Friday evening."
    assert retrieve(repository, "demo", "jazz") == [], "script text is not knowledge"
    assert retrieve(repository, "other", "wifi password") == [], "one agent's documents are not another's"
    blob = library.sources.get("demo/agents/demo/allergens-pdf.pdf")
    assert blob is not None
    assert blob.startswith(b"%PDF")


def test_reingesting_a_document_replaces_its_chunks(library: KnowledgeLibrary, tmp_path: Path) -> None:
    path = tmp_path / "parking.md"
    long = "\n\n".join(
        f"## Level {n}\n\nLevel {n} of the garage has {n * 10} spaces for scooters." for n in range(1, 9)
    )
    path.write_text(f"# Parking\n\n{long}", "utf-8")
    first = library.ingest_file("demo", path)
    assert first.chunks > 1

    path.write_text("# Parking\n\nThe garage is closed; park on Brigade Road.", "utf-8")
    second = library.ingest_file("demo", path)

    assert second.chunks == 1
    assert library.repository.chunks("demo", "parking-md")[0].chunk_id == "demo=parking-md=0"
    assert retrieve(library.repository, "demo", "scooters garage level") == [
        {
            "chunk_id": "demo=parking-md=0",
            "document_id": "parking-md",
            "title": "Parking",
            "source": "parking.md",
            "text": "# Parking\n\nThe garage is closed; park on Brigade Road.",
        }
    ]


def test_deleting_a_document_removes_its_chunks_and_its_source(library: KnowledgeLibrary, tmp_path: Path) -> None:
    path = tmp_path / "loyalty.txt"
    path.write_text("Every tenth chai is free with a loyalty card.", "utf-8")
    library.ingest_file("demo", path)
    assert retrieve(library.repository, "demo", "loyalty card")

    library.delete("demo", "loyalty-txt")

    assert retrieve(library.repository, "demo", "loyalty card") == []
    assert "loyalty-txt" not in {d.document_id for d in library.list("demo")}
    assert library.sources.get("demo/agents/demo/loyalty-txt.txt") is None
    with pytest.raises(NotFound, match="no document 'loyalty-txt'"):
        library.delete("demo", "loyalty-txt")


def test_agent_file_entries_stay_theirs(library: KnowledgeLibrary) -> None:
    with pytest.raises(Conflict, match="comes from the agent file"):
        library.delete("demo", "inline-opening-hours")
    assert retrieve(library.repository, "demo", "when do you open")[0]["chunk_id"] == "demo=inline-opening-hours=0"
    assert retrieve(library.repository, "demo", "when do you open")[0]["source"] == "demo.toml"


def test_an_upload_under_its_own_id_is_created_then_unchanged_then_replaced_and_its_old_file_goes(
    library: KnowledgeLibrary,
) -> None:
    notes = b"# Terrace\n\nThe terrace seats twelve."
    created, first = library.upload("demo", "terrace", "Terrace", "terrace.md", notes)
    again, second = library.upload("demo", "terrace", "Terrace", "terrace.md", notes)
    assert (first, second) == ("created", "unchanged")
    assert again == created, "nothing was redone: not even updated_at moved"

    pdf = pdf_bytes(["The terrace is closed in the monsoon."])
    replaced, third = library.upload("demo", "terrace", "Terrace", "terrace.pdf", pdf)

    assert third == "replaced"
    assert (replaced.content_type, replaced.source, replaced.size_bytes) == ("application/pdf", "terrace.pdf", len(pdf))
    assert library.sources.get("demo/agents/demo/terrace.pdf") == pdf
    assert library.sources.get("demo/agents/demo/terrace.md") is None, "the replaced file of another type is gone"
    assert retrieve(library.repository, "demo", "terrace monsoon")[0]["document_id"] == "terrace"
    with pytest.raises(Conflict) as refused:
        library.upload("demo", "inline-menu", "Menu", "menu.txt", b"Only water.")
    assert refused.value.code == "document_managed_by_file"
    library.delete("demo", "terrace")


def test_an_index_that_fails_leaves_the_document_stored_searchable_and_pending(
    repository: KnowledgeRepository, sources: BlobStore, search: FakeSearchServer, openai: FakeOpenAIServer
) -> None:
    settings = search_settings(search, openai)
    index, embeddings = AzureSearchIndex.from_settings(settings), embeddings_for(settings)
    library = KnowledgeLibrary(repository, sources, settings, index, embeddings)
    search.fail(Unavailable(), Unavailable())  # the request and its one retry

    stored, _ = library.upload("other", "chutney", "Chutney", "chutney.txt", b"Our mint chutney is made daily.")

    assert not stored.indexed
    assert retrieve(repository, "other", "mint chutney")[0]["document_id"] == "chutney"
    assert library.index_pending("other") == 1
    assert repository.get_document("other", "chutney").indexed  # type: ignore[union-attr]
    search.fail(Unavailable(), Unavailable())
    library.delete("other", "chutney")
    assert repository.get_document("other", "chutney") is None, "deleted in Postgres though the index was down"
    assert sources.get("demo/agents/other/chutney.txt") is None


def test_bad_inputs_are_refused_with_a_clear_error_before_any_work(library: KnowledgeLibrary, tmp_path: Path) -> None:
    (tmp_path / "notes.docx").write_bytes(b"PK")
    (tmp_path / "big.txt").write_text("x" * 2_000, "utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "blank.md").write_text("  \n\n", "utf-8")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really")
    (tmp_path / "thick.pdf").write_bytes(pdf_bytes(["one", "two", "three"]))
    (tmp_path / "wordy.html").write_text("<p>" + "word " * 250 + "</p>", "utf-8")
    strict = KnowledgeLibrary(
        library.repository,
        library.sources,
        Settings(knowledge_max_file_bytes=1_500, knowledge_max_pdf_pages=2, knowledge_max_characters=1_000),
    )

    with pytest.raises(NotFound, match="unknown agent 'nobody'"):
        strict.ingest_file("nobody", tmp_path / "big.txt")
    with pytest.raises(NotFound, match="no such file"):
        strict.ingest_file("demo", tmp_path / "missing.txt")
    with pytest.raises(UnsupportedMediaType, match=r"unsupported file type '\.docx'"):
        strict.ingest_file("demo", tmp_path / "notes.docx")
    with pytest.raises(PayloadTooLarge, match="2000 bytes is over the limit of 1500"):
        strict.ingest_file("demo", tmp_path / "big.txt")
    with pytest.raises(Unprocessable, match="not UTF-8"):
        strict.ingest_file("demo", tmp_path / "latin1.txt")
    with pytest.raises(Unprocessable, match="no text"):
        strict.ingest_file("demo", tmp_path / "blank.md")
    with pytest.raises(Unprocessable, match="not a readable PDF"):
        strict.ingest_file("demo", tmp_path / "broken.pdf")
    with pytest.raises(PayloadTooLarge, match="3 pages is over the limit of 2"):
        strict.ingest_file("demo", tmp_path / "thick.pdf")
    with pytest.raises(PayloadTooLarge, match="characters of text is over the limit of 1000"):
        strict.ingest_file("demo", tmp_path / "wordy.html")
    stored = {d.document_id for d in library.list("demo")}
    assert not stored & {"big-txt", "latin1-txt", "blank-md", "broken-pdf", "thick-pdf", "wordy-html"}


def test_agent_file_may_name_knowledge_files_next_to_it(
    repository: KnowledgeRepository, sources: BlobStore, tmp_path: Path
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "faq.md").write_text("# FAQ\n\nWe accept UPI and cards.", "utf-8")
    agent = tmp_path / "filer.toml"
    agent.write_text(
        'name = "filer"\ndisplay_name = "F"\ngreeting = "hi"\n'
        '[[knowledge]]\ntitle = "Payments"\npath = "docs/faq.md"\n'
        '[[knowledge]]\ntitle = "Hours"\ntext = "Open at 9."\n',
        "utf-8",
    )
    profile = load_agent_file(agent)
    library = KnowledgeLibrary(repository, sources, Settings())
    repository.upsert_agent(profile)
    library.sync_agent_file(profile, tmp_path)

    assert retrieve(repository, "filer", "do you accept upi")[0] == {
        "chunk_id": "filer=faq-md=0",
        "document_id": "faq-md",
        "title": "Payments",
        "source": "faq.md",
        "text": "# FAQ\n\nWe accept UPI and cards.",
    }
    assert [d.origin for d in library.list("filer")] == ["file", "inline"]

    without = profile.model_copy(update={"knowledge": profile.knowledge[1:]})
    repository.upsert_agent(without)
    library.sync_agent_file(without, tmp_path)
    assert [d.document_id for d in library.list("filer")] == ["inline-hours"]

    agent.write_text(agent.read_text("utf-8").replace("docs/faq.md", "docs/gone.md"), "utf-8")
    with pytest.raises(AgentFileError, match=r"no file 'docs/gone\.md'"):
        load_agent_file(agent)


def test_the_ingest_command_exits_non_zero_with_a_message(
    database_url: str, blob_connection_string: str, repository: KnowledgeRepository, tmp_path: Path
) -> None:
    good = tmp_path / "tea.txt"
    good.write_text("Our masala chai uses Assam tea.", "utf-8")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BLOB_CONNECTION_STRING": blob_connection_string,
        "KNOWLEDGE_MAX_FILE_BYTES": "100",
    }

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shared.knowledge", *map(str, args)],
            cwd=REPOSITORY_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def run_each(*commands: tuple[str | Path, ...]) -> list[tuple[int, str, str]]:
        """Many commands through the module's `main`, in one interpreter: a subprocess each costs seconds."""
        script = (
            "import contextlib, io, json, sys\n"
            "from shared.knowledge.__main__ import main\n"
            "results = []\n"
            "for argv in json.load(sys.stdin):\n"
            "    out, err = io.StringIO(), io.StringIO()\n"
            "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
            "        code = main(argv)\n"
            "    results.append([code, out.getvalue(), err.getvalue()])\n"
            "print(json.dumps(results))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPOSITORY_ROOT,
            env=env,
            input=json.dumps([[str(a) for a in command] for command in commands]),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return [(code, out, err) for code, out, err in json.loads(done.stdout.splitlines()[-1])]

    ingested = run("ingest", "demo", good)
    assert (ingested.returncode, ingested.stdout.strip()) == (0, "ingested demo/tea-txt: 1 chunks from tea.txt")
    (tmp_path / "huge.txt").write_text("y" * 101, "utf-8")
    refusals: list[tuple[tuple[str | Path, ...], str]] = [
        (("ingest", "nobody", good), "error: unknown agent 'nobody'"),
        (("ingest", "demo", tmp_path / "nope.txt"), "no such file"),
        (("ingest", "demo", tmp_path / "x.exe"), "no such file"),
        (("ingest", "demo", good, tmp_path / "huge.txt"), "101 bytes is over the limit of 100"),
        (("delete", "demo", "nope"), "has no document 'nope'"),
        (("--tenant", "acme", "list", "demo"), "error: unknown agent 'demo'"),  # demo is the demo tenant's
    ]
    listed, *refused = run_each(("list", "demo"), *(args for args, _ in refusals))
    assert "tea-txt\tingest\t1 chunks\tnot indexed\ttea.txt\ttea" in listed[1]
    for (code, _, stderr), (_, message) in zip(refused, refusals, strict=True):
        assert code == 1, stderr
        assert message in stderr
    (tmp_path / "x.exe").write_bytes(b"MZ")
    exe, deleted, after = run_each(
        ("ingest", "demo", tmp_path / "x.exe"), ("delete", "demo", "tea-txt"), ("list", "demo")
    )
    assert exe[0] == 1
    assert "unsupported file type '.exe'" in exe[2]
    assert deleted[0] == 0
    assert after[1].count("tea-txt") == 0
    refused_usage = run("ingest", "demo", tmp_path / "nope.txt")
    assert (refused_usage.returncode, "no such file" in refused_usage.stderr) == (1, True), (
        "the exit status reaches the shell"
    )


# Azure AI Search, through azure-search-documents against the fake service.


@pytest.fixture
def search() -> Iterator[FakeSearchServer]:
    with FakeSearchServer(api_key="search-key") as server:
        yield server


@pytest.fixture(scope="module")
def openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def search_settings(search: FakeSearchServer, openai: FakeOpenAIServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "azure_search_endpoint": search.url,
        "azure_search_api_key": SecretStr("search-key"),
        "azure_search_max_retries": 1,
        "openai_base_url": f"{openai.url}/v1",
        "openai_embeddings_model": "text-embedding-3-small",
        **overrides,
    }
    return Settings.model_validate(values)


def test_documents_are_indexed_in_azure_ai_search_and_found_by_a_hybrid_query_kept_to_the_agent(
    repository: KnowledgeRepository,
    sources: BlobStore,
    search: FakeSearchServer,
    openai: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    settings = search_settings(search, openai)
    index, embeddings = AzureSearchIndex.from_settings(settings), embeddings_for(settings)
    assert embeddings is not None
    library = KnowledgeLibrary(repository, sources, settings, index, embeddings)
    (tmp_path / "desserts.txt").write_text("Our gulab jamun is made fresh every morning.", "utf-8")
    (tmp_path / "other-desserts.txt").write_text("Gulab jamun is not sold here.", "utf-8")

    library.ingest_file("demo", tmp_path / "desserts.txt")
    library.ingest_file("other", tmp_path / "other-desserts.txt")

    definition = search.indexes["knowledge"]
    fields = {f["name"]: f for f in definition["fields"]}
    assert fields["key"]["key"] is True
    assert fields["tenant"]["filterable"] is True
    assert fields["agent"]["filterable"] is True
    assert fields["content"]["searchable"] is True
    assert fields["title"]["searchable"] is True
    assert fields["content_vector"]["type"] == "Collection(Edm.Single)"
    assert fields["content_vector"]["dimensions"] == openai.embedding_dimensions
    assert fields["content_vector"]["vectorSearchProfile"] == "knowledge-vectors"
    assert definition["vectorSearch"]["profiles"] == [{"name": "knowledge-vectors", "algorithm": "knowledge-hnsw"}]
    assert definition["vectorSearch"]["algorithms"][0]["kind"] == "hnsw"
    uploaded = search.documents["knowledge"]["demo=demo=desserts-txt=0"]
    assert (uploaded["tenant"], uploaded["chunk_id"]) == ("demo", "demo=desserts-txt=0")
    assert len(uploaded["content_vector"]) == openai.embedding_dimensions
    assert {r.path for r in search.requests} >= {
        "/indexes('knowledge')",
        "/indexes('knowledge')/docs/search.index",
    }
    assert all(r.headers["api-key"] == "search-key" for r in search.requests)
    assert repository.get_document("demo", "desserts-txt").indexed  # type: ignore[union-attr]

    retriever = AzureSearchRetriever(
        index=index,
        embeddings=embeddings,
        repository=repository,
        agent="demo",
        limit=2,
        fallback=PostgresKnowledgeRetriever(repository=repository, agent="demo"),
    )
    found = retriever.invoke("is the gulab jamun fresh")

    assert found[0].page_content == "Our gulab jamun is made fresh every morning."
    assert {k: v for k, v in found[0].metadata.items() if k != "rank"} == {
        "chunk_id": "demo=desserts-txt=0",
        "document_id": "desserts-txt",
        "title": "desserts",
        "source": "desserts.txt",
    }
    assert all(d.metadata["chunk_id"].startswith("demo=") for d in found)
    query = search.requests[-1]
    assert query.path == "/indexes('knowledge')/docs/search.post.search"
    assert query.body["search"] == "is the gulab jamun fresh"
    assert query.body["filter"] == "tenant eq 'demo' and agent eq 'demo'"
    assert query.body["top"] == 2
    [vector_query] = query.body["vectorQueries"]
    assert (vector_query["kind"], vector_query["fields"], vector_query["k"]) == ("vector", "content_vector", 2)
    assert len(vector_query["vector"]) == openai.embedding_dimensions

    library.delete("demo", "desserts-txt")
    assert "demo=demo=desserts-txt=0" not in search.documents["knowledge"]
    assert "demo=desserts-txt=0" not in [d.metadata["chunk_id"] for d in retriever.invoke("gulab jamun fresh")]


def test_one_index_keeps_each_tenant_to_its_own_chunks_even_with_the_same_chunk_ids(
    pool: Pool, repository: KnowledgeRepository, sources: BlobStore, search: FakeSearchServer, openai: FakeOpenAIServer
) -> None:
    settings = search_settings(search, openai)
    index, embeddings = AzureSearchIndex.from_settings(settings), embeddings_for(settings)
    assert embeddings is not None
    library = KnowledgeLibrary(repository, sources, settings, index, embeddings)
    with pool.connection() as conn:  # the owner makes tenants; the app cannot
        conn.execute("INSERT INTO tenants (id, name) VALUES ('rival', 'Rival') ON CONFLICT DO NOTHING")
    with tenant_scope("rival"):
        repository.upsert_agent(load_agent_file(DEMO).model_copy(update={"knowledge": []}))
        library.ingest("demo", "secret.txt", b"The rival's secret recipe uses saffron.")
    library.ingest("demo", "secret.txt", b"Our recipe is public: cardamom and milk.")

    keys = set(search.documents["knowledge"])
    assert {"demo=demo=secret-txt=0", "rival=demo=secret-txt=0"} <= keys, "the same chunk id in two tenants"
    assert search.documents["knowledge"]["rival=demo=secret-txt=0"]["tenant"] == "rival"
    vector = embeddings.embed_query("secret recipe")
    ours = index.search("demo", "secret recipe saffron", vector, 5)
    assert [hit.body for hit in ours] == ["Our recipe is public: cardamom and milk."]
    with tenant_scope("rival"):
        theirs = index.search("demo", "secret recipe", vector, 5)
        assert [hit.body for hit in theirs] == ["The rival's secret recipe uses saffron."]
        library.delete("demo", "secret-txt")
    assert "rival=demo=secret-txt=0" not in search.documents["knowledge"]
    assert "demo=demo=secret-txt=0" in search.documents["knowledge"], "a tenant's delete leaves the others' chunks"


def test_a_throttled_search_is_retried_and_an_unavailable_one_falls_back_to_full_text_search(
    repository: KnowledgeRepository, sources: BlobStore, search: FakeSearchServer, openai: FakeOpenAIServer
) -> None:
    settings = search_settings(search, openai)
    index, embeddings = AzureSearchIndex.from_settings(settings), embeddings_for(settings)
    assert embeddings is not None
    library = KnowledgeLibrary(repository, sources, settings, index, embeddings)
    assert library.index_pending("demo") >= 5  # the demo agent file's entries
    retriever = AzureSearchRetriever(
        index=index,
        embeddings=embeddings,
        repository=repository,
        agent="demo",
        fallback=PostgresKnowledgeRetriever(repository=repository, agent="demo"),
    )

    search.fail(Throttled(retry_after_seconds=0))
    throttled = len(search.requests)
    assert retriever.invoke("how much does delivery cost")[0].metadata["chunk_id"] == "demo=inline-delivery=0"
    assert len(search.requests) == throttled + 2, "one 429, then the retry"

    search.fail(Unavailable(), Unavailable())
    answered = retriever.invoke("how much does delivery cost")
    assert answered[0].metadata["chunk_id"] == "demo=inline-delivery=0"
    assert answered[0].metadata["source"] == "demo.toml"
    assert [r.path for r in search.requests[-2:]] == ["/indexes('knowledge')/docs/search.post.search"] * 2


def test_a_wrong_search_key_is_refused(search: FakeSearchServer, openai: FakeOpenAIServer) -> None:
    from azure.core.exceptions import HttpResponseError

    index = AzureSearchIndex.from_settings(search_settings(search, openai, azure_search_api_key=SecretStr("wrong")))
    with pytest.raises(HttpResponseError) as refused:
        index.ensure(8)
    assert refused.value.status_code == 403


def test_azure_openai_embeddings_use_the_deployment(openai: FakeOpenAIServer) -> None:
    settings = Settings(
        azure_openai_endpoint=openai.url,
        azure_openai_api_key=SecretStr("azure-key"),
        azure_openai_embeddings_deployment="embed",
    )
    embeddings = embeddings_for(settings)
    assert embeddings is not None
    assert len(embeddings.embed_query("masala chai")) == openai.embedding_dimensions
    request = openai.embedding_requests[-1]
    assert request.path == "/openai/deployments/embed/embeddings"
    assert request.query["api-version"] == settings.azure_openai_api_version
    assert request.headers["api-key"] == "azure-key"
    assert request.body["input"] == ["masala chai"]


def test_the_retriever_is_azure_ai_search_when_configured_and_full_text_search_otherwise(
    new_database: Callable[[], str], blob_connection_string: str, search: FakeSearchServer, openai: FakeOpenAIServer
) -> None:
    database_url = new_database()
    local = Services(Settings(database_url=database_url, blob_connection_string=blob_connection_string))
    assert type(local.retriever("demo")) is PostgresKnowledgeRetriever

    settings = search_settings(search, openai, database_url=database_url, blob_connection_string=blob_connection_string)
    hosted = Services(settings)
    retriever = hosted.retriever("demo")
    assert type(retriever) is AzureSearchRetriever
    assert "demo=demo=inline-menu=0" in search.documents["knowledge"], "agent files are indexed on first use"
    assert retriever.invoke("do you have vegan options")[0].metadata["title"] == "Menu"
    with pytest.raises(ValueError, match="needs an embeddings model"):
        Settings(azure_search_endpoint=search.url)


def test_an_answer_from_azure_ai_search_cites_the_indexed_chunk_and_the_turn_keeps_it(
    app_services: AppServices, search: FakeSearchServer, openai: FakeOpenAIServer
) -> None:
    services = app_services(
        azure_search_endpoint=search.url,
        azure_search_api_key=SecretStr("search-key"),
        openai_base_url=f"{openai.url}/v1",
        openai_embeddings_model="text-embedding-3-small",
    )
    cited = {"text": "Yes: oat milk chai.", "intent": "question", "cites": ["demo=inline-menu=0", "made-up"]}
    openai.script(Answer(json.dumps(cited)))
    request = caller_turn(services, text="do you have vegan options")

    turn = activities.answer_turn(services, request)

    assert any("search.post.search" in r.path for r in search.requests), "AI Search was asked"
    [citation] = turn.citations
    assert (citation.chunk_id, citation.title) == ("demo=inline-menu=0", "Menu")
    assert services.conversations.get_turn(request.conversation_id, 1) == turn


def test_uploading_the_same_document_again_retries_an_index_upload_that_failed(
    repository: KnowledgeRepository, sources: BlobStore, search: FakeSearchServer, openai: FakeOpenAIServer
) -> None:
    settings = search_settings(search, openai)
    index, embeddings = AzureSearchIndex.from_settings(settings), embeddings_for(settings)
    library = KnowledgeLibrary(repository, sources, settings, index, embeddings)
    search.fail(Unavailable(), Unavailable())
    first, _ = library.upload("other", "raita", "Raita", "raita.txt", b"Our raita is cucumber and mint.")

    again, change = library.upload("other", "raita", "Raita", "raita.txt", b"Our raita is cucumber and mint.")

    assert (first.indexed, change, again.indexed) == (False, "unchanged", True)
