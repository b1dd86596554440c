"""The source file of every knowledge document, kept in its own Blob container (a `BlobStore`)."""

from __future__ import annotations

from pathlib import PurePath

from shared.storage.blobs import tenant_blob_name


def source_blob_name(agent: str, document_id: str, file_name: str) -> str:
    """Under the current tenant's folder, like every blob; documents keep the name they were stored under."""
    return tenant_blob_name(f"agents/{agent}/{document_id}{PurePath(file_name).suffix.lower()}")
