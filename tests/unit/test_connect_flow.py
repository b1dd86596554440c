"""The contact-flow snippets shipped in integrations/amazon-connect/ agree with the map the route answers:
every `$.External.<key>` they read is one we always send, every parameter they pass is one we read,
every transition lands on an action, and the Lambda block fits Connect's limits."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.config import REPOSITORY_ROOT
from shared.phone import connect

FOLDER = REPOSITORY_ROOT / "integrations" / "amazon-connect"
FLOWS = [FOLDER / "contact-flow.json", FOLDER / "disconnect-flow.json"]


def actions(path: Path) -> list[dict[str, Any]]:
    flow = json.loads(path.read_text())
    assert flow["Version"] == "2019-10-30"
    found: list[dict[str, Any]] = flow["Actions"]
    assert flow["StartAction"] in {a["Identifier"] for a in found}
    return found


@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.name)
def test_every_transition_lands_on_an_action_of_the_flow(path: Path) -> None:
    found = actions(path)
    identifiers = [a["Identifier"] for a in found]
    assert len(identifiers) == len(set(identifiers))
    for action in found:
        transitions = action["Transitions"]
        targets = [transitions.get("NextAction")] + [t["NextAction"] for t in transitions.get("Errors", [])]
        targets += [c["NextAction"] for c in transitions.get("Conditions", [])]
        assert {t for t in targets if t is not None} <= set(identifiers), action["Identifier"]


@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.name)
def test_the_flow_reads_only_keys_we_send_and_passes_only_parameters_we_read(path: Path) -> None:
    text = path.read_text()
    read = set(re.findall(r"\$\.External\.([A-Za-z_]+)", text))
    assert read <= set(connect.answer(connect.Action.END, "")), read
    for action in actions(path):
        if action["Type"] == "InvokeLambdaFunction":
            parameters = action["Parameters"]
            assert set(parameters["LambdaInvocationAttributes"]) <= set(connect.Step.model_fields)
            assert 0 < int(parameters["InvocationTimeLimitSeconds"]) <= 8
            assert parameters["ResponseValidation"] == {"ResponseType": "STRING_MAP"}


def test_the_flow_branches_on_every_action_and_listens_only_when_told() -> None:
    [compare] = [a for a in actions(FLOWS[0]) if a["Parameters"].get("ComparisonValue") == "$.External.action"]
    branches = {c["Condition"]["Operands"][0] for c in compare["Transitions"]["Conditions"]}
    assert branches == {action.value for action in connect.Action}
