"""What the admin routes take and answer (API keys, the conversation list, usage), as pydantic models.

Query models forbid unknown parameters (a misspelt filter is a 400, never silently ignored); every
field is bounded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Self

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, WithJsonSchema, model_validator

from shared.api_models import ApiModel, ConversationStatus, Timestamp
from shared.models import Outcome
from shared.security.roles import KEY_SCOPES, Scope
from shared.turn_requests import ClientText

MAX_PAGE = 200
DEFAULT_PAGE = 50
MAX_USAGE_DAYS = 366
MAX_KEY_LIFETIME = timedelta(days=3660)
"""Expiry at most ten years ahead: far enough for any service, near enough to stay a real date."""
AGENT_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def _key_scope(scope: Scope) -> Scope:
    if scope not in KEY_SCOPES:
        raise ValueError(f"an API key may carry only {', '.join(sorted(KEY_SCOPES))}")
    return scope


KeyScope = Annotated[Scope, AfterValidator(_key_scope), WithJsonSchema({"type": "string", "enum": sorted(KEY_SCOPES)})]


class ApiKeyRequest(ApiModel):
    name: Annotated[ClientText, StringConstraints(strip_whitespace=True, max_length=200, pattern=r"\S")]
    scopes: list[KeyScope] = Field(min_length=1, max_length=len(KEY_SCOPES))
    expires_at: AwareDatetime | None = Field(default=None, description="In the future, at most ten years ahead.")

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if len(set(self.scopes)) != len(self.scopes):
            raise ValueError("scopes: each scope once")
        if self.expires_at is not None:
            now = datetime.now(UTC)
            if not now < self.expires_at <= now + MAX_KEY_LIFETIME:
                raise ValueError("expires_at: in the future, at most ten years ahead")
        return self


class ApiKeyView(ApiModel):
    """A key as anyone may see it again: never its secret or hash."""

    id: str
    prefix: str = Field(description="`vao_<id>`: names the key in logs and lists, proves nothing.")
    name: str
    scopes: list[str]
    created_by: str
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None
    replaced_by: str | None = Field(description="The key a rotation made in this one's place.")


class IssuedApiKey(ApiKeyView):
    key: str = Field(description="The whole key, shown this once: store it now, nobody can show it again.")


class ApiKeyPage(ApiModel):
    items: list[ApiKeyView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last.")


class PageQuery(ApiModel):
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(default=None, max_length=200, description="`next_cursor` of the previous page.")


class ConversationQuery(PageQuery):
    agent: Annotated[str, StringConstraints(pattern=AGENT_NAME)] | None = None
    status: ConversationStatus | None = None
    outcome: Outcome | None = None
    since: AwareDatetime | None = Field(default=None, description="Started at or after (ISO 8601 with offset).")
    until: AwareDatetime | None = Field(default=None, description="Started before (ISO 8601 with offset).")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class ConversationItem(ApiModel):
    conversation_id: str
    agent: str
    channel: str
    language: str
    status: ConversationStatus
    outcome: str | None
    created_at: Timestamp
    ended_at: Timestamp | None
    turns: int
    transcript_url: str = Field(description="GET it for the transcript: every turn, summary and extraction.")


class ConversationPage(ApiModel):
    items: list[ConversationItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last.")


class UsageQuery(ApiModel):
    from_: date = Field(alias="from", description="First day (UTC), YYYY-MM-DD.")
    to: date = Field(description=f"Last day (UTC), inclusive; at most {MAX_USAGE_DAYS} days in all.")

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.from_ > self.to:
            raise ValueError("from must not be after to")
        if (self.to - self.from_).days >= MAX_USAGE_DAYS:
            raise ValueError(f"at most {MAX_USAGE_DAYS} days at once")
        return self


class UsageDay(ApiModel):
    day: date
    conversations: int = Field(description="Conversations started that day (UTC).")
    minutes: float = Field(description="Their length, ended ones only (an active conversation counts once it ends).")
    turns: int
    input_tokens: int
    output_tokens: int
    tts_characters: int = Field(description="Characters of the replies that were spoken (turns with audio).")
    cost_usd: float = Field(description="The turns' estimated model cost (models missing from the price table: 0).")


class UsageReport(ApiModel):
    from_: date = Field(serialization_alias="from")
    to: date
    days: list[UsageDay] = Field(description="Every day of the range, oldest first; days without calls are zeros.")
