"""What the admin routes take and answer (API keys, the conversation list, usage, agents, phone numbers,
the audit log), as pydantic models.

Query models forbid unknown parameters (a misspelt filter is a 400, never silently ignored); every
field is bounded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from shared.api_models import ApiModel, ConversationStatus, Timestamp
from shared.audit import AuditAction
from shared.models import PHONE_NUMBER, AgentProfile, AgentSource, Outcome, PhoneProvider
from shared.security.roles import KEY_SCOPES, Scope
from shared.turn_requests import ClientText, usable_text

MAX_PAGE = 200
DEFAULT_PAGE = 50
MAX_USAGE_DAYS = 366
MAX_KEY_LIFETIME = timedelta(days=3660)
"""Expiry at most ten years ahead: far enough for any service, near enough to stay a real date."""
AGENT_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_PROFILE_BYTES = 64 * 1024
"""An agent profile's JSON at most: prompts, intents, inline knowledge and tools, bounded before parsing."""
MAX_VERSION_PAGE = 50
"""Versions carry whole profiles (64 KiB each at most), so their pages are shorter."""
AgentName = Annotated[str, StringConstraints(pattern=AGENT_NAME)]


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


def _usable_everywhere(value: Any, path: str = "body") -> None:
    """Every string of the body, keys included, one Postgres and the providers take (`usable_text`)."""
    if isinstance(value, str):
        try:
            usable_text(value)
        except PydanticCustomError as error:
            raise PydanticCustomError("invalid_text", f"{path}: {error.message()}") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _usable_everywhere(key, f"{path} (a key)")
            _usable_everywhere(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _usable_everywhere(item, f"{path}.{index}")


class ApiAgentProfile(AgentProfile):
    """An agent as the admin API takes it: an agent file's fields as JSON, its knowledge inline (`text`),
    since there is no folder for a `path` to point into."""

    @model_validator(mode="before")
    @classmethod
    def _plain_text(cls, data: Any) -> Any:
        _usable_everywhere(data)
        return data

    @model_validator(mode="after")
    def _knowledge_inline(self) -> Self:
        for index, entry in enumerate(self.knowledge):
            if entry.path:
                raise ValueError(f"knowledge.{index}.path: an agent made here has its knowledge inline (text)")
        return self


class AgentItem(ApiModel):
    name: str
    display_name: str
    version: int
    source: AgentSource = Field(description="`file`: from AGENTS_DIR, read-only here; `api`: made here.")
    created_at: Timestamp
    updated_at: Timestamp


class AgentPage(ApiModel):
    items: list[AgentItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last.")


class AgentView(AgentItem):
    profile: AgentProfile


class AgentVersionView(ApiModel):
    version: int
    created_by: str = Field(description="Who wrote it: `api_key:<id>`, `user:<sub>` or `file:<name>.toml`.")
    created_at: Timestamp
    profile: dict[str, Any] = Field(description="The agent profile as this version had it.")


class AgentVersionPage(ApiModel):
    items: list[AgentVersionView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last.")


class VersionPageQuery(PageQuery):
    limit: int = Field(default=20, ge=1, le=MAX_VERSION_PAGE)


def _e164(number: str) -> str:
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if (
        not phonenumbers.is_valid_number(parsed)
        or phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != number
    ):
        raise ValueError("not a valid phone number in E.164 form, like +14155552671")
    return number


E164Number = Annotated[str, StringConstraints(pattern=PHONE_NUMBER), AfterValidator(_e164)]
"""A number E.164 writes (`+`, country code, number) that is valid where it belongs (`phonenumbers`)."""


class PhoneNumberChange(ApiModel):
    agent: AgentName = Field(description="An agent of yours, not deleted, that answers the number's calls.")
    provider: PhoneProvider


class PhoneNumberRequest(PhoneNumberChange):
    number: E164Number


class PhoneNumberView(ApiModel):
    number: str
    agent: str
    provider: PhoneProvider
    created_by: str
    created_at: Timestamp
    updated_at: Timestamp


class PhoneNumberPage(ApiModel):
    items: list[PhoneNumberView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last.")


class AuditQuery(PageQuery):
    since: AwareDatetime | None = Field(default=None, description="At or after (ISO 8601 with offset).")
    until: AwareDatetime | None = Field(default=None, description="Before (ISO 8601 with offset).")
    action: AuditAction | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class AuditEntryView(ApiModel):
    id: int
    at: Timestamp
    actor: str = Field(description="`api_key:<id>`, `user:<sub>` or `operator`.")
    action: str = Field(description="One of the `action` filter's values, like `agent.create`.")
    target: str = Field(description="The agent's name, the number or the key's id.")
    details: dict[str, Any] = Field(description="What changed; never a secret.")


class AuditPage(ApiModel):
    items: list[AuditEntryView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last.")
