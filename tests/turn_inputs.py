"""A caller's turn as the orchestrator hands it to `answer_turn`, in a conversation stored for it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from shared.models import TurnInput, TurnKind
from shared.services import Services
from shared.tenancy import DEMO_TENANT


def caller_turn(services: Services, **fields: Any) -> TurnInput:
    """Turn 1 of a new demo conversation, typed or spoken (`audio_blob`), just received."""
    conversation_id = str(uuid.uuid4())
    services.conversations.create(conversation_id, "demo", "en-US", "api")
    defaults: dict[str, Any] = {
        "conversation_id": conversation_id,
        "tenant": DEMO_TENANT,
        "agent": "demo",
        "language": "en-US",
        "turn": 1,
        "kind": TurnKind.UTTERANCE,
        "request_id": "r1",
        "next_event": "utterance-2",
        "received_at": time.time(),
    }
    return TurnInput(**(defaults | fields))
