"""Short-lived signed tokens that let an audio URL stand in for our credentials.

A browser's `<audio>` and a phone provider's `<Play>` fetch a URL and cannot send `Authorization` or
`X-API-Key`, so the URL carries a token (`?token=`) that an authenticated route signed with
AUDIO_URL_SIGNING_KEY (itsdangerous, HMAC-SHA256, salted for this one purpose so a token signed
for anything else never verifies here). It binds the tenant, the conversation, the turn and, for
one sentence's audio, the sentence, and it is good for AUDIO_URL_TTL_SECONDS.

Rotation: put the old key in AUDIO_URL_SIGNING_KEY_PREVIOUS and the new one in
AUDIO_URL_SIGNING_KEY; new tokens use the new key and both verify, so URLs handed out before the
change keep working until they expire (a TTL later the previous key can go).

Every refusal is a `Forbidden` (403) with a fixed message that never quotes the token: the request
did present a credential, and it does not grant this audio (401 would invite the caller to
authenticate with headers, which these clients cannot). A token whose signature is good but whose
age is past the TTL says so (`audio_url_expired`: fetched too late, a fresh URL will do); anything
else, whether forged, altered, or signed for other audio, is `invalid_audio_url`.

No key set (local runs): `AudioUrlSigner` refuses to be built rather than invent one, since a key
made up per process would not verify on another instance. The caller then serves audio only to
requests with credentials, or `make dev` sets AUDIO_URL_SIGNING_KEY to a random key of its own.
"""

from __future__ import annotations

import hashlib

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from pydantic import SecretStr

from shared.config import MIN_SIGNING_KEY_BYTES, Settings
from shared.errors import Forbidden

SALT = "voice.audio-url"
"""The purpose the key signs for here; a token signed with the same key for another purpose does not verify."""


class InvalidAudioUrl(Forbidden):
    code = "invalid_audio_url"

    def __init__(
        self, message: str = "This audio URL is not valid for this audio.", *, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)


class AudioUrlSigner:
    def __init__(self, key: SecretStr, *, ttl_seconds: int, previous_key: SecretStr | None = None) -> None:
        keys = [k.get_secret_value().encode() for k in (previous_key, key) if k is not None]
        if any(len(k) < MIN_SIGNING_KEY_BYTES for k in keys):
            raise ValueError(f"an audio URL signing key needs at least {MIN_SIGNING_KEY_BYTES} bytes")
        if ttl_seconds < 1:
            raise ValueError("a signed audio URL must be valid for at least a second")
        self._ttl = ttl_seconds
        self._serializer = URLSafeTimedSerializer(
            keys,  # the last key signs, every key verifies
            salt=SALT,
            signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AudioUrlSigner:
        key, previous = settings.audio_url_signing_key, settings.audio_url_signing_key_previous
        if not key.get_secret_value():
            raise RuntimeError("AUDIO_URL_SIGNING_KEY is not set: audio URLs cannot be signed")
        return cls(
            key,
            ttl_seconds=settings.audio_url_ttl_seconds,
            previous_key=previous if previous.get_secret_value() else None,
        )

    def sign(self, *, tenant: str, conversation_id: str, turn: int, sentence: int | None = None) -> str:
        """A URL-safe token for this audio, good for AUDIO_URL_TTL_SECONDS from now."""
        return self._serializer.dumps([tenant, conversation_id, turn, sentence])

    def verify(
        self,
        token: str,
        *,
        conversation_id: str,
        turn: int,
        sentence: int | None = None,
        tenant: str | None = None,
    ) -> str:
        """The tenant the token was signed for, if it is genuine, not expired and for exactly this audio."""
        try:
            claims = self._serializer.loads(token, max_age=self._ttl)
        except SignatureExpired:
            raise InvalidAudioUrl("This audio URL has expired.", code="audio_url_expired") from None
        except BadData:
            raise InvalidAudioUrl from None
        if not isinstance(claims, list) or claims[1:] != [conversation_id, turn, sentence]:
            raise InvalidAudioUrl
        signed_tenant: str = claims[0]
        if tenant is not None and tenant != signed_tenant:
            raise InvalidAudioUrl
        return signed_tenant
