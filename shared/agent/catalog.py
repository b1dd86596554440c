"""Agent files: one TOML file per agent in the agents folder, loaded and validated here."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from shared.errors import UnsupportedMediaType
from shared.knowledge.loading import content_type_of
from shared.models import AgentProfile


class AgentFileError(ValueError):
    """An agent file that cannot be used, with the file named so its author can fix it."""


def describe_errors(error: ValidationError) -> str:
    """One line per problem: the field's path in the file and why it was refused."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or '(file)'}: {problem['msg']}" for problem in error.errors()
    )


def load_agent_file(path: Path) -> AgentProfile:
    """The agent in `path`, or AgentFileError naming the file, each bad field and why."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise AgentFileError(f"{path}: {error}") from error
    try:
        profile = AgentProfile.model_validate(data)
    except ValidationError as error:
        raise AgentFileError(f"{path}: {describe_errors(error)}") from error
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
