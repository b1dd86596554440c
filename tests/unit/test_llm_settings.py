"""Language-model settings: keys stay secret wherever Settings is printed or dumped."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from pydantic import SecretStr

from shared.config import Settings


def test_provider_keys_are_hidden_when_settings_are_printed_or_dumped() -> None:
    settings = Settings(azure_openai_api_key=SecretStr("azure-secret"), openai_api_key=SecretStr("openai-secret"))

    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "azure-secret" not in shown
        assert "openai-secret" not in shown
    assert settings.azure_openai_api_key.get_secret_value() == "azure-secret"


@pytest.mark.parametrize("field", [{"llm_timeout_seconds": 0}, {"llm_max_retries": -1}, {"llm_max_retries": 6}])
def test_a_language_model_bound_out_of_range_is_refused_at_startup(field: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(**field)
