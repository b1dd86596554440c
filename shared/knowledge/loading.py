"""Text out of a knowledge file, one function per type; every bound is checked before the work it bounds."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import PurePath

from shared.errors import ApiError, PayloadTooLarge, Unprocessable, UnsupportedMediaType

CONTENT_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}

EXTENSIONS = {"text/plain": ".txt", "text/markdown": ".md", "text/html": ".html", "application/pdf": ".pdf"}
"""The file name extension a document sent with each content type is stored under (and loaded as)."""

# Control characters no store takes (Postgres text refuses NUL); tab and line breaks stay.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MARKDOWN_TITLE = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pdf_pages: int
    max_characters: int


@dataclass(frozen=True)
class LoadedText:
    title: str
    text: str
    content_type: str


def content_type_of(name: str) -> str:
    """The document's type from its file name; anything else is refused."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in CONTENT_TYPES:
        supported = ", ".join(sorted(CONTENT_TYPES))
        raise UnsupportedMediaType(f"{name}: unsupported file type {suffix or '(none)'!r}; supported: {supported}")
    return CONTENT_TYPES[suffix]


def check_size(name: str, size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise PayloadTooLarge(
            f"{name}: {size} bytes is over the limit of {limits.max_bytes} (KNOWLEDGE_MAX_FILE_BYTES)"
        )


def load_text(name: str, data: bytes, limits: Limits) -> LoadedText:
    """The title and plain text of a knowledge file of a supported type."""
    content_type = content_type_of(name)
    check_size(name, len(data), limits)
    stem = PurePath(name).stem
    if content_type == "application/pdf":
        title, text = _pdf(name, data, limits)
    elif content_type == "text/html":
        title, text = _html(_decode(name, data))
    elif content_type == "text/markdown":
        text = _decode(name, data)
        heading = _MARKDOWN_TITLE.search(text)
        title = heading.group(1) if heading else ""
    else:
        title, text = "", _decode(name, data)
    text = _CONTROL.sub("", text).strip()
    if len(text) > limits.max_characters:
        raise PayloadTooLarge(
            f"{name}: {len(text)} characters of text is over the limit of {limits.max_characters} "
            "(KNOWLEDGE_MAX_CHARACTERS)"
        )
    if not text:
        raise Unprocessable(f"{name}: no text found in the file", code="empty_document")
    title = _CONTROL.sub("", title).strip()[:300] or stem
    return LoadedText(title=title, text=text, content_type=content_type)


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Unprocessable(f"{name}: not UTF-8 text ({error.reason} at byte {error.start})") from error


def _html(markup: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    if not title and (heading := soup.find("h1")) is not None:
        title = heading.get_text(" ", strip=True)
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return title, "\n".join(line for line in lines if line)


def _pdf(name: str, data: bytes, limits: Limits) -> tuple[str, str]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Unprocessable(f"{name}: the PDF is encrypted", code="unreadable_document")
        pages = len(reader.pages)
        if pages > limits.max_pdf_pages:
            raise PayloadTooLarge(
                f"{name}: {pages} pages is over the limit of {limits.max_pdf_pages} (KNOWLEDGE_MAX_PDF_PAGES)"
            )
        texts: list[str] = []
        characters = 0
        for page in reader.pages:
            texts.append(page.extract_text() or "")
            characters += len(texts[-1])
            if characters > limits.max_characters:
                raise PayloadTooLarge(
                    f"{name}: over {limits.max_characters} characters of text (KNOWLEDGE_MAX_CHARACTERS)"
                )
        metadata = reader.metadata
        title = str(metadata.title) if metadata is not None and metadata.title else ""
    except ApiError:
        raise
    except Exception as error:
        # pypdf is not hardened against hostile input: a broken xref table raised TypeError. Whatever it
        # raises on a file is the file's fault, never a 500.
        raise Unprocessable(f"{name}: not a readable PDF ({error})", code="unreadable_document") from error
    return title, "\n\n".join(t.strip() for t in texts if t.strip())
