"""An agent's knowledge documents over the admin API, through a devhost: what is uploaded is what the agent
answers from and cites, a replaced document answers anew, a deleted one is never cited again."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from devhost.process import DevHost
from tests.e2e.conftest import StartDevHost
from tests.pdf_files import pdf_bytes

DOCS = "/api/agents/demo/documents"
MAX_FILE_BYTES = 20_000


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost(KNOWLEDGE_MAX_FILE_BYTES=str(MAX_FILE_BYTES), KNOWLEDGE_MAX_PDF_PAGES="2")


def upload(
    host: DevHost,
    body: bytes,
    content_type: str,
    title: str,
    *,
    path: str = DOCS,
    document_id: str | None = None,
    key: str | None = None,
) -> requests.Response:
    params = {"title": title} | ({} if document_id is None else {"document_id": document_id})
    credentials = {} if key is None else {"X-API-Key": key}
    return host.post(path, data=body, params=params, headers={"Content-Type": content_type, **credentials})


def uploaded(host: DevHost, body: bytes, content_type: str, title: str, status: int = 201) -> dict[str, Any]:
    response = upload(host, body, content_type, title)
    assert response.status_code == status, response.text
    return dict(response.json())


def delete(host: DevHost, path: str, key: str | None = None) -> requests.Response:
    headers = {} if key is None else {"X-API-Key": key}
    return requests.delete(host.url(path), **host.request_options(False, {"headers": headers}))


def error_code(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


def ask(host: DevHost, question: str) -> tuple[str, list[str]]:
    """The reply to `question` in a new conversation, and the documents its turn cites."""
    started = host.post("/api/conversations", json={})
    assert started.status_code == 201, started.text
    conversation_id = started.json()["conversation_id"]
    turn = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": question})
    assert turn.status_code == 200, turn.text
    detail = host.get(f"/api/conversations/{conversation_id}").json()
    cited = [c["document_id"] for c in detail["turns"][-1]["citations"]]
    return turn.json()["reply"]["text"], cited


def test_each_content_type_is_uploaded_listed_read_and_answered_from_with_its_citation(host: DevHost) -> None:
    files = {
        "Rooftop": (b"The rooftop terrace seats twelve guests.", "text/plain"),
        "Loyalty": (b"# Loyalty\n\nEvery tenth masala dosa is free with a stamp card.", "text/markdown"),
        "Catering": (
            b"<html><head><title>x</title><script>var s = 'hidden';</script></head>"
            b"<body><p>We cater weddings for up to three hundred guests.</p></body></html>",
            "text/html",
        ),
        "Allergens": (pdf_bytes(["Our samosas contain gluten and peanuts."]), "application/pdf"),
    }
    made = {title: uploaded(host, body, kind, title) for title, (body, kind) in files.items()}

    assert {t: d["document_id"] for t, d in made.items()} == {
        "Rooftop": "rooftop-txt",
        "Loyalty": "loyalty-md",
        "Catering": "catering-html",
        "Allergens": "allergens-pdf",
    }
    for title, document in made.items():
        body, kind = files[title]
        assert document["change"] == "created"
        assert (document["title"], document["content_type"], document["size_bytes"]) == (title, kind, len(body))
        assert (document["origin"], document["chunks"], document["indexed"]) == ("ingest", 1, False)
        read = host.get(f"{DOCS}/{document['document_id']}")
        assert read.status_code == 200, read.text
        assert read.json() == {k: v for k, v in document.items() if k != "change"}
    listed = host.get(DOCS, params={"origin": "ingest"})
    assert listed.status_code == 200, listed.text
    assert [d["document_id"] for d in listed.json()["items"]] == sorted(d["document_id"] for d in made.values())

    questions = {
        "rooftop-txt": "how many guests does the rooftop terrace seat",
        "loyalty-md": "is there a stamp card for dosa",
        "catering-html": "do you cater weddings",
        "allergens-pdf": "which allergens are in the samosas",
    }
    for document_id, question in questions.items():
        reply, cited = ask(host, question)
        assert cited == [document_id], reply
    assert "peanuts" in ask(host, "which allergens are in the samosas")[0]
    assert "hidden" not in ask(host, "do you cater weddings")[0], "scripts are not text"


def test_the_same_upload_again_changes_nothing_and_changed_bytes_replace_the_document(host: DevHost) -> None:
    first = upload(host, b"The parking garage has forty scooter spaces.", "text/plain", "Parking")
    assert (first.status_code, first.json()["change"]) == (201, "created")
    assert first.headers["Location"] == f"{DOCS}/parking-txt"
    again = uploaded(host, b"The parking garage has forty scooter spaces.", "text/plain", "Parking", status=200)
    assert again == {**first.json(), "change": "unchanged"}, "nothing redone: updated_at did not move"

    replaced = uploaded(host, b"The parking garage is closed; park on Brigade Road.", "text/plain", "Parking", 200)

    assert replaced["change"] == "replaced"
    assert replaced["updated_at"] > first.json()["updated_at"]
    reply, cited = ask(host, "where can I park my scooter in the garage")
    assert cited == ["parking-txt"]
    assert "Brigade Road" in reply
    assert "forty" not in reply


def test_a_deleted_document_is_gone_and_never_cited_again(host: DevHost) -> None:
    uploaded(host, b"Our chutney is made with fresh mint every morning.", "text/plain", "Chutney")
    assert ask(host, "is the mint chutney fresh")[1] == ["chutney-txt"]

    removed = delete(host, f"{DOCS}/chutney-txt")

    assert removed.status_code == 204, removed.text
    assert error_code(host.get(f"{DOCS}/chutney-txt"), 404) == "document_not_found"
    assert "chutney-txt" not in ask(host, "is the mint chutney fresh")[1]
    assert error_code(delete(host, f"{DOCS}/chutney-txt"), 404) == "document_not_found"


def test_bad_uploads_are_refused_with_the_right_status_and_store_nothing(host: DevHost) -> None:
    text = "text/plain"
    assert error_code(upload(host, b"PK\x03\x04", "application/msword", "Word"), 415) == "unsupported_media_type"
    assert error_code(upload(host, b"x" * (MAX_FILE_BYTES + 1), text, "Big"), 413) == "payload_too_large"
    thick = pdf_bytes(["one", "two", "three"])
    assert error_code(upload(host, thick, "application/pdf", "Thick"), 413) == "payload_too_large"
    assert error_code(upload(host, b"", text, "Empty"), 422) == "empty_document"
    assert error_code(upload(host, b" \n\t ", text, "Blank"), 422) == "empty_document"
    assert error_code(upload(host, b"%PDF-1.4 not really", "application/pdf", "Broken"), 422) == "unreadable_document"
    assert error_code(upload(host, "café".encode("latin-1"), text, "Latin"), 422) == "unprocessable"
    assert error_code(upload(host, b"fine", text, "Id", document_id="Not An Id"), 400) == "invalid_query"
    assert error_code(upload(host, b"fine", text, "Id", document_id="inline-menu"), 400) == "invalid_query"
    assert error_code(upload(host, b"fine", text, "Inline menu"), 400) == "reserved_document_id"
    assert error_code(upload(host, b"fine", text, " "), 400) == "invalid_query"
    assert error_code(host.post(DOCS, data=b"fine", headers={"Content-Type": text}), 400) == "invalid_query"
    assert error_code(upload(host, b"fine", text, "Lost", path="/api/agents/nobody/documents"), 404) == "unknown_agent"
    assert error_code(upload(host, b"fine", text, "Lost", path="/api/agents/No!/documents"), 404) == "unknown_agent"

    listed = host.get(DOCS, params={"origin": "ingest", "limit": 200}).json()["items"]
    assert not {d["title"] for d in listed} & {"Word", "Big", "Thick", "Empty", "Blank", "Broken", "Latin", "Id"}


def test_the_agent_files_documents_are_listed_but_changed_only_there(host: DevHost) -> None:
    inline = host.get(DOCS, params={"origin": "inline"})
    assert inline.status_code == 200, inline.text
    assert "inline-opening-hours" in [d["document_id"] for d in inline.json()["items"]]
    assert {d["origin"] for d in inline.json()["items"]} == {"inline"}

    assert error_code(delete(host, f"{DOCS}/inline-opening-hours"), 409) == "document_managed_by_file"
    assert ask(host, "what are your opening hours")[1] == ["inline-opening-hours"]
    assert error_code(host.get(f"{DOCS}/no-such-doc"), 404) == "document_not_found"
    assert error_code(host.get("/api/agents/nobody/documents"), 404) == "unknown_agent"
    assert error_code(host.get(f"{DOCS}/Bad.Id"), 404) == "document_not_found"


def test_the_list_pages_by_cursor_through_every_document_once(host: DevHost) -> None:
    everything = [d["document_id"] for d in host.get(DOCS, params={"limit": 200}).json()["items"]]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = host.get(DOCS, params=params).json()
        seen += [d["document_id"] for d in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == everything == sorted(everything)
    assert len(everything) >= 5
    assert error_code(host.get(DOCS, params={"cursor": "garbage"}), 400) == "invalid_cursor"
    assert error_code(host.get(DOCS, params={"origin": "elsewhere"}), 400) == "invalid_query"


def test_a_read_only_key_reads_documents_but_cannot_change_them(host: DevHost) -> None:
    made = host.post("/api/keys", json={"name": "reader", "scopes": ["agents:read"]})
    assert made.status_code == 201, made.text
    reader = made.json()["key"]
    talker = host.post("/api/keys", json={"name": "talker", "scopes": ["conversations:write"]}).json()["key"]

    assert host.get(DOCS, headers={"X-API-Key": reader}).status_code == 200
    assert host.get(f"{DOCS}/inline-menu", headers={"X-API-Key": reader}).status_code == 200
    assert error_code(upload(host, b"Free chai today.", "text/plain", "Offer", key=reader), 403) == "forbidden"
    assert error_code(delete(host, f"{DOCS}/inline-menu", key=reader), 403) == "forbidden"
    assert error_code(host.get(DOCS, headers={"X-API-Key": talker}), 403) == "forbidden"
    assert error_code(host.get(f"{DOCS}/offer-txt"), 404) == "document_not_found"


def test_each_document_change_is_in_the_audit_log_and_a_retry_that_changes_nothing_is_not(host: DevHost) -> None:
    uploaded(host, b"The terrace opens at six.", "text/plain", "Terrace")
    uploaded(host, b"The terrace opens at six.", "text/plain", "Terrace", status=200)
    uploaded(host, b"The terrace opens at seven.", "text/plain", "Terrace", status=200)
    assert delete(host, f"{DOCS}/terrace-txt").status_code == 204

    entries = host.get("/api/audit", params={"limit": 200}).json()["items"]
    mine = [(e["action"], e["actor"]) for e in reversed(entries) if e["target"].endswith("/document/terrace-txt")]

    actor = mine[0][1]
    assert actor.startswith("api_key:")
    assert mine == [("document.create", actor), ("document.replace", actor), ("document.delete", actor)]
