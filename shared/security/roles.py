"""Who may do what: the roles people hold, the scopes API keys carry, and the one decision.

Every route will ask `allows(principal, scope)` (or `require`, which raises `Forbidden`), and nothing
else decides. A person's scopes come from their roles through `ROLE_SCOPES`; an API key carries the
scopes it was created with, no more. Tenancy is not decided here: a principal only ever acts inside
its own tenant, which the storage layer enforces.

| scope                 | what it allows                                        | owner | admin | builder | viewer |
|-----------------------|-------------------------------------------------------|-------|-------|---------|--------|
| `conversations:read`  | list conversations, read transcripts and audio        | ✓     | ✓     | ✓       | ✓      |
| `conversations:write` | start conversations, send turns, end them             | ✓     | ✓     | ✓       |        |
| `conversations:admin` | delete conversations with their audio and recordings  | ✓     | ✓     |         |        |
| `agents:read`         | read agents, phone numbers and knowledge documents    | ✓     | ✓     | ✓       | ✓      |
| `agents:admin`        | create, update, delete agents, numbers and knowledge  | ✓     | ✓     | ✓       |        |
| `calls:write`         | place outbound phone calls (`POST /api/calls`)        | ✓     | ✓     |         |        |
| `usage:read`          | read usage per day and the audit log                  | ✓     | ✓     |         | ✓      |
| `keys:admin`          | create, list, rotate and revoke the tenant's API keys | ✓     | ✓     |         |        |
| `tenant:admin`        | tenant-wide actions (reserved: no route uses it yet)  | ✓     |       |         |        |
| `metrics:read`        | read the deployment's metrics (`GET /api/metrics`)    | ✓     |       |         |        |

Deleting a conversation erases what was said and recorded, for good: like `keys:admin`, it is for owners
and admins; builders end conversations but do not erase them.

API keys may carry any scope but `tenant:admin` (`KEY_SCOPES`): tenant-wide actions are for people. A
key with `metrics:read` alone is what a Prometheus scraper holds. Metrics cover the whole deployment
(every tenant's calls, no tenant label), so only owners hold it by role.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from shared.errors import Forbidden


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    BUILDER = "builder"
    VIEWER = "viewer"


class Scope(StrEnum):
    CONVERSATIONS_READ = "conversations:read"
    CONVERSATIONS_WRITE = "conversations:write"
    CONVERSATIONS_ADMIN = "conversations:admin"
    AGENTS_READ = "agents:read"
    AGENTS_ADMIN = "agents:admin"
    CALLS_WRITE = "calls:write"
    USAGE_READ = "usage:read"
    KEYS_ADMIN = "keys:admin"
    TENANT_ADMIN = "tenant:admin"
    METRICS_READ = "metrics:read"


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.OWNER: frozenset(Scope),
    Role.ADMIN: frozenset(Scope) - {Scope.TENANT_ADMIN, Scope.METRICS_READ},
    Role.BUILDER: frozenset(
        {Scope.CONVERSATIONS_READ, Scope.CONVERSATIONS_WRITE, Scope.AGENTS_READ, Scope.AGENTS_ADMIN}
    ),
    Role.VIEWER: frozenset({Scope.CONVERSATIONS_READ, Scope.AGENTS_READ, Scope.USAGE_READ}),
}
"""The table in the module docstring and the README, as data."""

KEY_SCOPES: frozenset[Scope] = frozenset(Scope) - {Scope.TENANT_ADMIN}
"""The scopes an API key may be created with."""


@dataclass(frozen=True)
class Principal:
    """Whoever presented credentials we accepted: a person signed in (`roles`) or an API key (`scopes`).

    `subject` is the token's `sub` for a person, the key's public id for a key. A person's `scopes` are
    empty (their roles decide); a key's `roles` are empty (its scopes decide).
    """

    kind: Literal["user", "api_key"]
    subject: str
    tenant: str
    roles: frozenset[Role] = frozenset()
    scopes: frozenset[Scope] = frozenset()


def allows(principal: Principal, scope: Scope) -> bool:
    """Whether `principal` may do what `scope` names, in its own tenant. The only decision there is."""
    if principal.kind == "api_key":
        return scope in principal.scopes and scope in KEY_SCOPES
    return any(scope in ROLE_SCOPES[role] for role in principal.roles)


def require(principal: Principal, scope: Scope) -> None:
    """`allows`, as the routes use it: refused is a 403 that names the missing scope (never who holds it)."""
    if not allows(principal, scope):
        raise Forbidden(f"This needs the {scope.value} permission.")
