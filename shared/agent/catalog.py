"""Agent files: one TOML file per agent in the agents folder, loaded and validated here."""

from __future__ import annotations

import tomllib
from pathlib import Path

from shared.errors import UnsupportedMediaType
from shared.knowledge.loading import content_type_of
from shared.models import AgentProfile


class AgentFileError(ValueError):
    """An agent file that cannot be used, with the file named so its author can fix it."""


def load_agent_file(path: Path) -> AgentProfile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        profile = AgentProfile.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError, ValueError) as error:
        raise AgentFileError(f"{path}: {error}") from error
    if profile.name != path.stem:
        raise AgentFileError(f"{path}: name {profile.name!r} must match the file name")
    for entry in profile.knowledge:
        if entry.path and not (path.parent / entry.path).is_file():
            raise AgentFileError(f"{path}: knowledge {entry.title!r}: no file {entry.path!r} next to the agent file")
        if entry.path:
            try:
                content_type_of(entry.path)
            except UnsupportedMediaType as error:
                raise AgentFileError(f"{path}: knowledge {entry.title!r}: {error.message}") from error
    return profile


def load_agents(folder: Path) -> list[AgentProfile]:
    """Every agent in the folder, sorted by name."""
    return [load_agent_file(path) for path in sorted(folder.glob("*.toml"))]
