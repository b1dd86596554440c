"""The source file of every knowledge document, kept in its own Blob container."""

from __future__ import annotations

from contextlib import suppress
from pathlib import PurePath

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings


def source_blob_name(agent: str, document_id: str, file_name: str) -> str:
    return f"agents/{agent}/{document_id}{PurePath(file_name).suffix.lower()}"


class SourceStore:
    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._container: ContainerClient = service.get_container_client(container)
        self._ready = False

    def _ensure_container(self) -> None:
        if self._ready:
            return
        with suppress(ResourceExistsError):
            self._container.create_container()
        self._ready = True

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self._ensure_container()
        self._container.upload_blob(
            name, data, overwrite=True, content_settings=ContentSettings(content_type=content_type)
        )

    def get(self, name: str) -> bytes | None:
        try:
            return self._container.download_blob(name).readall()
        except ResourceNotFoundError:
            return None

    def delete(self, name: str) -> None:
        with suppress(ResourceNotFoundError):
            self._container.delete_blob(name)
