"""The source file of every knowledge document, kept in its own Blob container (a `BlobStore`)."""

from __future__ import annotations

from pathlib import PurePath


def source_blob_name(agent: str, document_id: str, file_name: str) -> str:
    return f"agents/{agent}/{document_id}{PurePath(file_name).suffix.lower()}"
