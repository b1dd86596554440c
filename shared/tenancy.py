"""Whose data this unit of work touches: the tenant, carried in a context variable.

The HTTP layer sets it from the caller's credentials, activities from their input, the agent-file sync
to `demo`. Storage reads it for Postgres (`app.tenant`, which row-level security checks), Redis key
prefixes and Blob paths, so no repository method takes a tenant and none can forget one. Nothing set
means no tenant: storage refuses to work rather than guess (fail closed).

`asyncio.to_thread` and new tasks copy the context, so work a handler hands off keeps its tenant.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar

DEMO_TENANT = "demo"
"""The tenant the agent files in `agents/` belong to, and the one `make dev` makes a key for."""

TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
"""A tenant id (`fullmatch`): lower-case letters, digits and `-`, like `demo` or an Entra tenant GUID."""

_current: ContextVar[str | None] = ContextVar("tenant", default=None)


class NoTenant(RuntimeError):
    """Storage was used outside any tenant: a bug in the caller, never a client's mistake."""


@contextlib.contextmanager
def tenant_scope(tenant: str) -> Iterator[str]:
    """Run the block as `tenant`; the previous tenant (or none) comes back after it."""
    if not TENANT_ID.fullmatch(tenant):
        raise ValueError(f"not a tenant id: {tenant!r}")
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)


def current_tenant() -> str:
    """The tenant of this unit of work, or `NoTenant`."""
    tenant = _current.get()
    if tenant is None:
        raise NoTenant("no tenant is set for this work (tenant_scope)")
    return tenant
