"""Knowledge text cut into chunks small enough to retrieve and quote, with LangChain's text splitters."""

from __future__ import annotations


def split_text(text: str, content_type: str, chunk_characters: int, overlap: int) -> list[str]:
    """Chunks of about `chunk_characters`, cut at headings (Markdown), paragraphs, lines, then words."""
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    if content_type == "text/markdown":
        splitter = RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=chunk_characters, chunk_overlap=overlap
        )
    else:
        splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_characters, chunk_overlap=overlap)
    return [chunk.strip() for chunk in splitter.split_text(text) if chunk.strip()]
