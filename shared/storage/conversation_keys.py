"""Forgetting a deleted conversation in Redis: every key that names it or points at it.

Its own keys live under `TurnKeys` (`{prefix}t:{tenant}:conv:{id}:`): turn lock, hand-off copies,
reply streams, the announced next event. Beside those, under the tenant's prefix, `placed:{id}` (an
outbound call's answer) and start keys (`start:{name}`) whose value is the conversation: an
Idempotency-Key's, a provider call's (`twilio:{CallSid}`, `vonage:{uuid}`, `connect:{ContactId}`,
`vonage-conversation:{CON-…}`), or whose name is it (`answered:{id}`, a call's machine verdict). A key whose name merely
contains the id (a client's own Idempotency-Key) is another conversation's and stays.
A provider call's start key has a twin outside any tenant, `{prefix}leg:{name}` (the tenant that
placed or records the call), deleted with it.

The keys are found with SCAN over the tenant's prefix, not KEYS: a delete is rare, and SCAN never
blocks the server, whatever the number of keys.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from shared.storage.handoff import tenant_prefix

if TYPE_CHECKING:
    import redis

SCAN_COUNT = 1000
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def forget_conversation(client: redis.Redis, prefix: str, conversation_id: str) -> int:
    """Delete every key of the current tenant that names or points at the conversation; how many."""
    tenant_keys = tenant_prefix(prefix)
    own = f"{tenant_keys}conv:{conversation_id}:"
    starts = f"{tenant_keys}start:"
    doomed: set[str] = set()
    for raw in client.scan_iter(match=_GLOB_SPECIAL.sub(r"\\\1", tenant_keys) + "*", count=SCAN_COUNT):
        key = _text(raw)
        if key.startswith(own) or key == f"{tenant_keys}placed:{conversation_id}":
            doomed.add(key)
        elif key.startswith(starts):
            name = key.removeprefix(starts)
            value = client.get(key)
            if name == f"answered:{conversation_id}" or (value is not None and _text(value) == conversation_id):
                doomed |= {key, f"{prefix}leg:{name}"}
    if not doomed:
        return 0
    return int(client.delete(*doomed))
