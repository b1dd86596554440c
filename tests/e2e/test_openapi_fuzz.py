"""The served OpenAPI document, and Schemathesis against it: no operation answers a 5xx, whatever it is sent.

Every operation of `/api/openapi.json` gets examples that fit its schema and examples that break it
(Schemathesis' positive and negative modes), sent with the demo key. Derandomized, so a run is the
same run every time, and bounded, so it takes well under two minutes.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from devhost.process import DevHost
from functions.catalogue import OPERATIONS, document
from shared.openapi import Operation
from tests.e2e.conftest import StartDevHost

EXAMPLES_PER_OPERATION = 25

# A WAV recording or an uploaded document is bytes like any other: Schemathesis sends it as it sends
# application/octet-stream (text/plain it knows).
schemathesis.serializer.alias(
    ["audio/wav", "text/markdown", "text/html", "application/pdf"], "application/octet-stream"
)


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost(TURN_REPLY_TIMEOUT_SECONDS="20")


@pytest.fixture(scope="module")
def served(host: DevHost) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(host.url("/api/openapi.json"))


def test_the_document_is_served_anonymously_cacheable_and_is_the_catalogues(host: DevHost) -> None:
    response = requests.get(host.url("/api/openapi.json"), timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert response.json() == document().build()


CASES = [
    pytest.param(operation, mode, id=f"{operation.operation_id}-{mode}")
    for operation in OPERATIONS
    for mode in GenerationMode
    # Negative examples break a parameter or body: an operation without any has none to make.
    if mode is GenerationMode.POSITIVE or operation.path_parameters() or operation.query or operation.body
]


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_no_operation_answers_a_server_error(
    served: schemathesis.BaseSchema, host: DevHost, operation: Operation, mode: GenerationMode
) -> None:
    strategy = served[operation.path][operation.method].as_strategy(mode)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(base_url=host.base, headers={"X-API-Key": host.api_key}, checks=[not_a_server_error])

    call()
