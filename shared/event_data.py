"""The data of a Durable external event, as an orchestrator receives it on Azure and on the devhost."""

from __future__ import annotations

import json
from typing import Any


def raised_value(received: Any) -> Any:
    """The value that was raised, from what the orchestrator's task result holds.

    The Durable extension serializes a raised event's data once more than the Python client sent
    it, so on Azure the result is the JSON *text* of the value, not the value
    (Azure/azure-functions-durable-python#295). A host that hands over the value itself (an
    object) is accepted as well; a `str` is always read as JSON text.
    """
    return json.loads(received) if isinstance(received, str) else received
