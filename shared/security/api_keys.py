"""API keys for services (`X-API-Key`): made here, shown once, kept only as a hash, checked in constant time.

A key reads `vao_<id>_<secret>`: `vao_` says whose key it is (secret scanners and people can tell one
at a glance), `<id>` (12 hex characters, 48 random bits) is its public id, shown in lists and used to
find its row, and `<secret>` is 43 base62 characters from `secrets` (256 bits). Only `vao_<id>` is ever
shown again; the database keeps the SHA-256 of the whole key.

Why a plain SHA-256 and not bcrypt/argon2: those exist to make guessing a *low-entropy* secret (a
password) from its hash slow. Nobody can guess a 256-bit random secret, slowly or fast, so a slow hash
would only add its cost to every request. Whoever steals the table learns no key.

Checks, for a presented key: its shape (no database work for junk), its row by id, the hash compared
with `hmac.compare_digest`, then not revoked and not expired by the database's clock. Every refusal is
the same `InvalidApiKey` (401), saying neither which check failed nor anything of the key. A use is
recorded in `last_used_at` at most once per `LAST_USED_RESOLUTION`, so verifying costs a read, not a
write, on almost every request.

Rotation makes a new key with the same tenant, name and scopes (and, unless told otherwise, the same
expiry) and revokes the old one at once, in one transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import BadRequest, NotFound, Unauthorized
from shared.security.roles import KEY_SCOPES, Principal, Scope
from shared.storage.api_keys import ApiKeyRecord, ApiKeyRepository, DuplicateKeyId, NewApiKey
from shared.tenancy import TENANT_ID, tenant_scope

PREFIX = "vao_"
SECRET_CHARACTERS = 43
"""43 base62 characters: 43 x log2(62) ≈ 256 bits."""
LAST_USED_RESOLUTION = timedelta(minutes=1)
_ALPHABET = string.ascii_letters + string.digits
_KEY = re.compile(rf"{PREFIX}([0-9a-f]{{12}})_([0-9A-Za-z]{{{SECRET_CHARACTERS}}})")
_ID_ATTEMPTS = 3


class InvalidApiKey(Unauthorized):
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__("The API key is not valid.")


@dataclass(frozen=True)
class IssuedApiKey:
    """A key just made: `key` is the only time anyone sees the secret."""

    key: str
    record: ApiKeyRecord


def display_prefix(key_id: str) -> str:
    """How a key is named once made: `vao_<id>`, which identifies it and proves nothing."""
    return f"{PREFIX}{key_id}"


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


def _new_key() -> tuple[str, str]:
    key_id = secrets.token_hex(6)
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_CHARACTERS))
    return key_id, f"{PREFIX}{key_id}_{secret}"


class ApiKeys:
    def __init__(self, repository: ApiKeyRepository, last_used_resolution: timedelta = LAST_USED_RESOLUTION) -> None:
        self._repository = repository
        self._resolution = last_used_resolution

    def create(
        self,
        tenant: str,
        name: str,
        scopes: set[Scope] | frozenset[Scope],
        created_by: str,
        expires_at: datetime | None = None,
    ) -> IssuedApiKey:
        """A new key of `tenant`. The route must check first that its caller holds every scope it grants."""
        if not TENANT_ID.fullmatch(tenant):
            raise BadRequest("Not a tenant id.")
        if not 1 <= len(name.strip()) <= 200:
            raise BadRequest("An API key needs a name of 1 to 200 characters.")
        if not scopes or not set(scopes) <= KEY_SCOPES:
            raise BadRequest(f"An API key needs one or more of: {', '.join(sorted(KEY_SCOPES))}.")
        if expires_at is not None and expires_at.tzinfo is None:
            raise BadRequest("An expiry needs a time zone.")
        return self._issue(
            self._repository.insert,
            tenant=tenant,
            name=name.strip(),
            scopes=tuple(sorted(scope.value for scope in scopes)),
            created_by=created_by,
            expires_at=expires_at,
        )

    def rotate(self, tenant: str, key_id: str, created_by: str) -> IssuedApiKey:
        """A new key in place of `key_id` (which is revoked at once). NotFound: not the tenant's, revoked
        or expired."""
        current = self._repository.get(tenant, key_id)
        if current is None:
            raise NotFound("No such API key.")
        return self._issue(
            lambda new: self._repository.rotate(tenant, key_id, new),
            tenant=tenant,
            name=current.name,
            scopes=current.scopes,
            created_by=created_by,
            expires_at=current.expires_at,
        )

    def revoke(self, tenant: str, key_id: str, revoked_by: str) -> ApiKeyRecord:
        return self._repository.revoke(tenant, key_id, revoked_by)

    def get(self, tenant: str, key_id: str) -> ApiKeyRecord:
        """The tenant's key `key_id` (revoked or expired included); NotFound for any other."""
        record = self._repository.get(tenant, key_id)
        if record is None:
            raise NotFound("No such API key.")
        return record

    def page(self, tenant: str, limit: int, after: tuple[datetime, str] | None = None) -> list[ApiKeyRecord]:
        """A page of the tenant's keys, newest first, revoked ones included; never a secret or a hash."""
        return self._repository.page(tenant, limit, after)

    def list(self, tenant: str) -> list[ApiKeyRecord]:
        """The tenant's keys, revoked ones included; never a secret or a hash."""
        return self._repository.list_for(tenant)

    def verify(self, presented: str | None) -> Principal:
        """The principal of an `X-API-Key` value, or `InvalidApiKey`."""
        match = _KEY.fullmatch(presented or "")
        if match is None:
            raise InvalidApiKey()
        assert presented is not None
        found = self._repository.find(match.group(1))
        if found is None:
            raise InvalidApiKey()
        record = found.record
        if not hmac.compare_digest(found.key_hash, key_hash(presented)):
            raise InvalidApiKey()
        if record.revoked_at is not None or (record.expires_at is not None and record.expires_at <= found.now):
            raise InvalidApiKey()
        if record.last_used_at is None or found.now - record.last_used_at >= self._resolution:
            with tenant_scope(record.tenant_id):
                self._repository.touch(record.id, self._resolution)
        return Principal(
            kind="api_key",
            subject=record.id,
            tenant=record.tenant_id,
            scopes=frozenset(Scope(s) for s in record.scopes if s in {k.value for k in KEY_SCOPES}),
        )

    def _issue(
        self,
        store: Callable[[NewApiKey], ApiKeyRecord],
        *,
        tenant: str,
        name: str,
        scopes: tuple[str, ...],
        created_by: str,
        expires_at: datetime | None,
    ) -> IssuedApiKey:
        for _ in range(_ID_ATTEMPTS):
            key_id, key = _new_key()
            new = NewApiKey(key_id, tenant, name, key_hash(key), scopes, created_by, expires_at)
            try:
                return IssuedApiKey(key, store(new))
            except DuplicateKeyId:
                continue
        raise RuntimeError("could not draw a free API key id")
