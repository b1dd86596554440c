"""Raised event data reaches the orchestrator as JSON text on Azure; the app reads it on any host."""

from __future__ import annotations

import json

from shared.event_data import raised_value
from shared.models import Utterance


def test_finding_2_an_utterance_raised_on_azure_is_read_from_its_json_text() -> None:
    """Azure/azure-functions-durable-python#295: the task result is the client's `json.dumps(data)`."""
    sent = {"request_id": "r1", "text": "hello"}
    on_azure = json.dumps(sent)
    assert Utterance.model_validate(raised_value(on_azure)).text == "hello"


def test_finding_2_a_host_that_hands_over_the_object_is_read_as_well() -> None:
    assert raised_value({"text": "hello"}) == {"text": "hello"}
    assert raised_value(None) is None
