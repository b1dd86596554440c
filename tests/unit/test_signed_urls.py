"""Signed audio URLs: they verify for exactly the audio they were signed for, until they expire."""

from __future__ import annotations

import re
import time
from typing import Any

import pydantic
import pytest
from pydantic import SecretStr

from shared.config import Settings
from shared.security.signed_urls import AudioUrlSigner, InvalidAudioUrl

KEY = SecretStr("k" * 32)
NEW_KEY = SecretStr("n" * 40)
AUDIO: dict[str, Any] = {"conversation_id": "c0ffee00-0000-4000-8000-000000000001", "turn": 3}


def signer(key: SecretStr = KEY, previous: SecretStr | None = None, ttl: int = 900) -> AudioUrlSigner:
    return AudioUrlSigner(key, ttl_seconds=ttl, previous_key=previous)


def test_a_token_verifies_for_its_audio_and_names_its_tenant() -> None:
    token = signer().sign(tenant="acme", **AUDIO)
    sentence_token = signer().sign(tenant="acme", sentence=2, **AUDIO)

    assert signer().verify(token, **AUDIO) == "acme"
    assert signer().verify(token, tenant="acme", **AUDIO) == "acme"
    assert signer().verify(sentence_token, sentence=2, **AUDIO) == "acme"
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token), "URL-safe as it is"


@pytest.mark.parametrize(
    "other",
    [
        {"conversation_id": "c0ffee00-0000-4000-8000-000000000002", "turn": 3},
        {"conversation_id": AUDIO["conversation_id"], "turn": 4},
        {**AUDIO, "sentence": 0},
        {**AUDIO, "tenant": "globex"},
    ],
)
def test_a_token_for_other_audio_or_another_tenant_is_refused(other: dict[str, Any]) -> None:
    token = signer().sign(tenant="acme", **AUDIO)

    with pytest.raises(InvalidAudioUrl) as refused:
        signer().verify(token, **other)

    assert (refused.value.status, refused.value.code) == (403, "invalid_audio_url")


def test_a_sentence_token_is_not_the_whole_turns() -> None:
    with pytest.raises(InvalidAudioUrl):
        signer().verify(signer().sign(tenant="acme", sentence=1, **AUDIO), **AUDIO)


def test_tampered_or_foreign_tokens_are_refused_without_being_echoed() -> None:
    token = signer().sign(tenant="acme", **AUDIO)
    payload, timestamp, signature = token.rsplit(".", 2)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]  # the last character may hold only padding bits
    for bad in [
        f"{payload}.{timestamp}.{flipped}",
        signer(NEW_KEY).sign(tenant="acme", **AUDIO),
        "not a token",
        "",
        token + "x",
    ]:
        with pytest.raises(InvalidAudioUrl) as refused:
            signer().verify(bad, **AUDIO)
        assert (refused.value.code, refused.value.message) == (
            "invalid_audio_url",
            "This audio URL is not valid for this audio.",
        )


def test_an_expired_token_says_so() -> None:
    short = signer(ttl=1)
    token = short.sign(tenant="acme", **AUDIO)
    signed_by = time.time()
    time.sleep(int(signed_by) + 2 - signed_by + 0.05)  # itsdangerous counts whole seconds

    with pytest.raises(InvalidAudioUrl) as refused:
        short.verify(token, **AUDIO)

    assert (refused.value.status, refused.value.code) == (403, "audio_url_expired")
    assert signer(ttl=900).verify(token, **AUDIO) == "acme", "the same token within a longer TTL"


def test_after_a_rotation_old_tokens_still_verify_and_new_ones_use_the_new_key() -> None:
    old_token = signer(KEY).sign(tenant="acme", **AUDIO)
    rotated = signer(NEW_KEY, previous=KEY)
    new_token = rotated.sign(tenant="acme", **AUDIO)

    assert rotated.verify(old_token, **AUDIO) == "acme"
    assert signer(NEW_KEY).verify(new_token, **AUDIO) == "acme"
    with pytest.raises(InvalidAudioUrl):
        signer(KEY).verify(new_token, **AUDIO)


def test_the_signer_demands_a_real_key() -> None:
    for short in [SecretStr(""), SecretStr("k" * 31)]:
        with pytest.raises(ValueError, match="32 bytes"):
            signer(short)
    with pytest.raises(ValueError, match="32 bytes"):
        signer(KEY, previous=SecretStr("short"))
    with pytest.raises(RuntimeError, match="AUDIO_URL_SIGNING_KEY"):
        AudioUrlSigner.from_settings(Settings(audio_url_signing_key=SecretStr("")))


def test_settings_build_the_signer_with_both_keys() -> None:
    old_token = signer(KEY).sign(tenant="acme", **AUDIO)
    settings = Settings(
        audio_url_signing_key=NEW_KEY,
        audio_url_signing_key_previous=KEY,
        audio_url_ttl_seconds=60,
    )

    assert AudioUrlSigner.from_settings(settings).verify(old_token, **AUDIO) == "acme"


@pytest.mark.parametrize(
    "settings",
    [
        {"audio_url_signing_key": "k" * 31},
        {"audio_url_signing_key": "k" * 32, "audio_url_signing_key_previous": "short"},
        {"audio_url_signing_key_previous": "k" * 32},
        {"audio_url_ttl_seconds": 0},
        {"audio_url_ttl_seconds": 86_400},
    ],
)
def test_bad_signing_settings_are_refused_at_startup(settings: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"(?i)audio_url"):
        Settings(**settings)
