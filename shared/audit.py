"""What an audit log entry says: the actions there are, and one entry (stored by `shared/storage/audit.py`).

Every admin write records one entry: `actor` as `created_by` columns write it (`api_key:<id>`,
`user:<sub>`, `operator`; a route gets it from `functions.auth.current_actor()`), `action` one of
`AuditAction`, `target` the name or id of what it acted on, `details` what changed, never a secret
(no key, hash or token).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AuditAction(StrEnum):
    """Every action the log records; a new kind of admin write adds its own here."""

    AGENT_CREATE = "agent.create"
    AGENT_UPDATE = "agent.update"
    AGENT_DELETE = "agent.delete"
    PHONE_NUMBER_CREATE = "phone_number.create"
    PHONE_NUMBER_UPDATE = "phone_number.update"
    PHONE_NUMBER_DELETE = "phone_number.delete"
    KEY_CREATE = "key.create"
    KEY_ROTATE = "key.rotate"
    KEY_REVOKE = "key.revoke"
    DOCUMENT_CREATE = "document.create"
    DOCUMENT_REPLACE = "document.replace"
    DOCUMENT_DELETE = "document.delete"
    CONVERSATION_DELETE = "conversation.delete"


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: AuditAction
    target: str
    details: Mapping[str, Any] = field(default_factory=dict)
