"""Whether a web session's client is still connected, counted from the hub's `connected` and
`disconnected` events in Redis.

Each event updates the conversation's count of open connections and bumps its sequence number in one
script, so concurrent events are counted in one order, and the event handler tells the orchestration
under the name `presence-<seq>` (`dialog.presence_event`): the orchestration takes them in that order and
starts its grace timer when none is open. The service does not promise the order of a connection's own
events (a `disconnected` may overtake its `connected`), so a closed connection is remembered and never
counted as open again. Everything is one hash (fields `seq`, `open`, `open:<id>`, `closed:<id>`), so the
script touches one key, as a clustered Redis requires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.models import Presence
from shared.storage.handoff import TurnKeys

if TYPE_CHECKING:
    import redis
    import redis.asyncio as aioredis

PRESENCE_TTL_SECONDS = 7 * 24 * 3600
"""Kept a week after the last change: longer than any session, so the numbering never restarts under it."""

_COUNT = """
local id = ARGV[1]
if ARGV[2] == 'connected' then
    local reopened = redis.call('HEXISTS', KEYS[1], 'closed:' .. id) == 1
    if not reopened and redis.call('HSETNX', KEYS[1], 'open:' .. id, 1) == 1 then
        redis.call('HINCRBY', KEYS[1], 'open', 1)
    end
else
    if redis.call('HDEL', KEYS[1], 'open:' .. id) == 1 then
        redis.call('HINCRBY', KEYS[1], 'open', -1)
    end
    redis.call('HSET', KEYS[1], 'closed:' .. id, 1)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {seq, tonumber(redis.call('HGET', KEYS[1], 'open') or '0')}
"""


async def count(
    client: aioredis.Redis, prefix: str, conversation_id: str, connection_id: str, *, connected: bool
) -> Presence:
    """Count one `connected` or `disconnected` event of the conversation's connection `connection_id`."""
    key = TurnKeys(prefix, conversation_id).presence
    event = "connected" if connected else "disconnected"
    seq, open_connections = await client.eval(_COUNT, 1, key, connection_id, event, PRESENCE_TTL_SECONDS)
    return Presence(seq=int(seq), connected=int(open_connections) > 0)


def current(client: redis.Redis, prefix: str, conversation_id: str) -> Presence:
    """The count so far; a conversation whose client has not connected yet is not gone."""
    seq, open_connections = client.hmget(TurnKeys(prefix, conversation_id).presence, ["seq", "open"])
    if seq is None:
        return Presence(seq=0, connected=True)
    return Presence(seq=int(seq), connected=int(open_connections or 0) > 0)
