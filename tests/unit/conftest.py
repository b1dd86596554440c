"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from shared.agent.catalog import load_agent_file
from shared.config import REPOSITORY_ROOT
from shared.models import AgentProfile


@pytest.fixture(scope="module")
def demo() -> AgentProfile:
    """The demo agent, as its file in the repository describes it."""
    return load_agent_file(REPOSITORY_ROOT / "agents" / "demo.toml")
