"""One Settings object for the whole app: every knob the product reads, documented here.

Values come from environment variables (Azure app settings, `local.settings.json` under Core Tools,
or the shell for `make dev`). Nothing else in the codebase reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Environment-driven configuration; field names map to UPPER_CASE variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = Field(
        default="",
        description="libpq URI of the Postgres database. Empty: `make dev` starts an embedded server.",
    )
    database_pool_max: int = Field(default=10, ge=1, description="Max Postgres connections per worker.")
    redis_url: str = Field(default="", description="Redis URL. Empty: `make dev` starts an embedded redis-server.")
    redis_key_prefix: str = Field(
        default="voice:", description="Prefix of every Redis key, so deployments can share a cache."
    )
    blob_connection_string: str = Field(
        default="UseDevelopmentStorage=true",
        description="Storage connection string for audio (Azurite locally). Ignored if BLOB_ACCOUNT_URL is set.",
    )
    blob_account_url: str = Field(
        default="",
        description="https://<account>.blob.core.windows.net: use managed identity instead of a key.",
    )
    audio_container: str = Field(default="audio", description="Blob container holding turn audio.")
    agents_dir: Path = Field(default=REPOSITORY_ROOT / "agents", description="Folder of agent files (`<name>.toml`).")
    default_agent: str = Field(default="demo", description="Agent used when a conversation names none.")
    turn_reply_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=200,
        description="How long a turn request waits for its reply before answering 504 (the turn still completes). "
        "At most 200 s: Azure's front end cuts every HTTP request at 230 s.",
    )
    max_request_bytes: int = Field(default=2_000_000, gt=0, description="Largest accepted request body (413 above).")
    audio_max_seconds: float = Field(
        default=30.0,
        gt=0,
        le=120,
        description="Longest accepted spoken turn (422 above); recognition work grows with it, hence the cap.",
    )
    silence_timeout_seconds: int = Field(
        default=120, gt=0, description="Silence after which the agent re-prompts the caller."
    )
    max_silences: int = Field(default=2, ge=1, description="Re-prompts before the agent hangs up on a silent caller.")
    turns_per_generation: int = Field(
        default=20,
        ge=1,
        description="Turns per orchestration generation before continue-as-new keeps replay short.",
    )
    history_turns: int = Field(default=6, ge=0, description="Previous turns the agent sees as conversation context.")
    public_base_url: str = Field(
        default="",
        description="Origin used in audio URLs (e.g. behind a proxy). Empty: the request's own origin.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
