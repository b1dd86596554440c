"""The `demo` tenant's API key for `make dev`: made on first run, kept in `<data-dir>/api-key` (0600).

A later run reuses the key in the file while the database still accepts it; a key the database no
longer knows (a fresh database, a revoked key) is replaced by a new one. Only a new key is printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devhost.access import write_secret
from shared.security.api_keys import ApiKeys, InvalidApiKey
from shared.security.roles import KEY_SCOPES
from shared.tenancy import DEMO_TENANT

API_KEY_FILE = "api-key"
KEY_NAME = "make dev"


@dataclass(frozen=True)
class DemoKey:
    key: str
    path: Path
    created: bool


def ensure_demo_key(data_dir: Path, api_keys: ApiKeys) -> DemoKey:
    path = data_dir / API_KEY_FILE
    if path.exists():
        kept = path.read_text().strip()
        try:
            if api_keys.verify(kept).tenant == DEMO_TENANT:
                return DemoKey(kept, path, created=False)
        except InvalidApiKey:
            pass
    issued = api_keys.create(DEMO_TENANT, KEY_NAME, KEY_SCOPES, created_by="devhost")
    write_secret(path, issued.key)
    return DemoKey(issued.key, path, created=True)
