"""Audio in Blob Storage: turn replies and uploaded caller audio, one container.

Every name starts with the current tenant (`{tenant}/...`), so one tenant's blobs never share a path
with another's. Readers use the name stored with the turn or computed the same way in the same tenant.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from shared.tenancy import current_tenant


def blob_service(connection_string: str, account_url: str) -> BlobServiceClient:
    """Managed identity when an account URL is configured, else the connection string (Azurite)."""
    if account_url:
        from azure.identity import DefaultAzureCredential

        return BlobServiceClient(account_url, credential=DefaultAzureCredential())
    return BlobServiceClient.from_connection_string(connection_string)


def tenant_blob_name(name: str) -> str:
    """`name` under the current tenant's folder (`NoTenant` without one)."""
    return f"{current_tenant()}/{name}"


def conversation_folder(conversation_id: str) -> str:
    """Where every blob of a conversation lives: its replies, their sentences, the caller's audio, the recording."""
    return tenant_blob_name(f"conversations/{conversation_id}/")


def reply_audio_name(conversation_id: str, turn: int) -> str:
    return tenant_blob_name(f"conversations/{conversation_id}/turns/{turn:05d}.wav")


def sentence_audio_name(conversation_id: str, turn: int, index: int) -> str:
    """One sentence of a reply, announced on the reply stream while the rest is still being made."""
    return tenant_blob_name(f"conversations/{conversation_id}/turns/{turn:05d}/{index:03d}.wav")


def recording_name(conversation_id: str) -> str:
    """A phone call's recording, as its provider delivered it, beside the conversation's audio."""
    return tenant_blob_name(f"conversations/{conversation_id}/recording.wav")


def caller_audio_name(conversation_id: str, request_id: str) -> str:
    """Named after a hash of the request id: client-chosen ids are not blob-safe."""
    digest = hashlib.sha256(request_id.encode()).hexdigest()[:32]
    return tenant_blob_name(f"conversations/{conversation_id}/input/{digest}.wav")


class BlobStore:
    """The blobs of one container (created on first use): turn audio, knowledge sources."""

    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._container: ContainerClient = service.get_container_client(container)
        self._ready = False

    def _ensure_container(self) -> None:
        if self._ready:
            return
        with suppress(ResourceExistsError):
            self._container.create_container()
        self._ready = True

    def put(self, name: str, data: bytes, content_type: str = "audio/wav") -> None:
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

    def delete_folder(self, prefix: str) -> int:
        """Delete every blob whose name starts with `prefix` (a folder's, ending in `/`); how many there were."""
        try:
            names = [blob.name for blob in self._container.list_blobs(name_starts_with=prefix)]
        except ResourceNotFoundError:  # no container yet: nothing was ever stored
            return 0
        for name in names:
            self.delete(name)
        return len(names)

    def ping(self) -> None:
        """Round-trip to the storage account (health checks)."""
        self._ensure_container()
        self._container.get_container_properties()
