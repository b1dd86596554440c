"""Bearer tokens from a real (fake) OpenID provider over HTTP: each accepted or refused for the right reason.

The provider signs real RS256 tokens; the validator fetches its discovery document and JWKS through
PyJWT's own client, so caching, refresh-on-unknown-kid and its cooldown are PyJWT's real behaviour.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from shared.config import Settings
from shared.security.roles import Principal, Role
from shared.security.tokens import IdentityProviderUnavailable, InvalidToken, TokenValidator
from tests.fakes.oidc_server import AUDIENCE, FakeOpenIdProvider, new_rsa_key

COOLDOWN = 2.0
"""Long enough that a loaded machine never lets it lapse between two steps a test means to be within it."""


@pytest.fixture
def idp() -> Iterator[FakeOpenIdProvider]:
    with FakeOpenIdProvider() as provider:
        yield provider


def validator_for(idp: FakeOpenIdProvider, **settings: object) -> TokenValidator:
    values: dict[str, object] = {
        "auth_oidc_config_url": idp.config_url,
        "auth_audience": f"6f1c0a2e-0000-4000-8000-00000000abcd, {AUDIENCE}",
        "auth_jwks_refresh_cooldown_seconds": COOLDOWN,
        "auth_leeway_seconds": 30,
    }
    return TokenValidator.from_settings(Settings(**(values | settings)))  # type: ignore[arg-type]


@pytest.fixture
def validator(idp: FakeOpenIdProvider) -> TokenValidator:
    return validator_for(idp)


def refused(validator: TokenValidator, token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    error = caught.value
    assert error.status == 401
    for part in token.split("."):
        if len(part) >= 8:
            assert part[:16] not in error.message
            assert part[:16] not in str(error)
    return error


def test_a_valid_token_is_the_person_with_their_tenant_and_known_roles(
    idp: FakeOpenIdProvider, validator: TokenValidator
) -> None:
    token = idp.issue(roles=["admin", "viewer", "superuser", 7])

    principal = validator.principal(f"Bearer {token}")

    assert principal == Principal(
        kind="user", subject="user-1", tenant="acme", roles=frozenset({Role.ADMIN, Role.VIEWER})
    )


def test_the_audience_may_be_any_configured_one_and_the_scheme_any_case(
    idp: FakeOpenIdProvider, validator: TokenValidator
) -> None:
    token = idp.issue(aud="6f1c0a2e-0000-4000-8000-00000000abcd")
    assert validator.principal(f"bearer {token}").subject == "user-1"


def test_the_tenant_comes_from_the_configured_claim(idp: FakeOpenIdProvider) -> None:
    validator = validator_for(idp, auth_tenant_claim="tid")
    token = idp.issue(tid="7f3c2a41-0000-4000-8000-000000000001")
    assert validator.validate(token).tenant == "7f3c2a41-0000-4000-8000-000000000001"


def test_no_roles_claim_is_a_person_with_no_roles(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    assert validator.validate(idp.issue(roles=None)).roles == frozenset()
    assert validator.validate(idp.issue(roles="owner")).roles == frozenset()


def test_discovery_and_keys_are_fetched_once_for_many_tokens(
    idp: FakeOpenIdProvider, validator: TokenValidator
) -> None:
    for _ in range(5):
        validator.validate(idp.issue())
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


def test_expired_is_refused_and_says_so(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    now = int(time.time())
    error = refused(validator, idp.issue(iat=now - 3600, nbf=now - 3600, exp=now - 60))
    assert error.reason == "expired"
    assert "expired" in error.message


def test_expired_within_the_leeway_is_still_accepted(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    now = int(time.time())
    assert validator.validate(idp.issue(exp=now - 10)).subject == "user-1"


def test_not_yet_valid_is_refused(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    now = int(time.time())
    assert refused(validator, idp.issue(nbf=now + 300, exp=now + 900)).reason == "not_yet_valid"


def test_wrong_audience_is_refused(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    assert refused(validator, idp.issue(aud="api://someone-else")).reason == "audience"


def test_wrong_issuer_is_refused(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    # The discovery document's own host is not the issuer External ID puts in tokens.
    assert refused(validator, idp.issue(iss=f"{idp.url}/v2.0")).reason == "issuer"


@pytest.mark.parametrize("claim", ["exp", "nbf", "iss", "aud", "sub"])
def test_a_token_missing_a_required_claim_is_refused(
    idp: FakeOpenIdProvider, validator: TokenValidator, claim: str
) -> None:
    assert refused(validator, idp.issue(**{claim: None})).reason == "missing_claim"


@pytest.mark.parametrize("tenant", [None, "", "Acme", "acme/../other", 42, "a" * 64])
def test_a_token_naming_no_tenant_of_ours_is_refused(
    idp: FakeOpenIdProvider, validator: TokenValidator, tenant: object
) -> None:
    assert refused(validator, idp.issue(extension_tenant=tenant)).reason == "no_tenant"


def test_alg_none_is_refused_without_fetching_keys(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    assert refused(validator, idp.forge_none()).reason == "algorithm"
    assert idp.jwks_fetches == 0


def test_hs256_signed_with_the_public_key_is_refused(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    validator.validate(idp.issue())  # the keys are cached: a lax verifier would now accept the forgery
    assert refused(validator, idp.forge_hs256_with_public_key()).reason == "algorithm"


def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(
    idp: FakeOpenIdProvider, validator: TokenValidator
) -> None:
    assert refused(validator, idp.issue(kid="key-1", signing_key=new_rsa_key())).reason == "signature"


def test_a_tampered_payload_is_refused(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    header, _, signature = idp.issue().split(".")
    other = idp.issue(extension_tenant="other").split(".")[1]
    assert refused(validator, f"{header}.{other}.{signature}").reason == "signature"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_a_header_without_a_bearer_token_is_refused(validator: TokenValidator, header: str | None) -> None:
    with pytest.raises(InvalidToken) as caught:
        validator.principal(header)
    assert caught.value.reason == "missing"


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "x" * 20_000])
def test_garbage_is_refused_as_malformed(validator: TokenValidator, token: str) -> None:
    assert refused(validator, token).reason == "malformed"


def test_a_key_rotated_in_is_accepted_after_one_refetch(idp: FakeOpenIdProvider, validator: TokenValidator) -> None:
    validator.validate(idp.issue())
    idp.rotate("key-2")
    time.sleep(COOLDOWN + 0.1)

    assert validator.validate(idp.issue(kid="key-2")).subject == "user-1"
    assert idp.jwks_fetches == 2
    validator.validate(idp.issue(kid="key-2"))
    validator.validate(idp.issue(kid="key-1"))
    assert idp.jwks_fetches == 2


def test_a_key_rotated_in_within_the_cooldown_of_the_last_fetch_waits_for_it(
    idp: FakeOpenIdProvider, validator: TokenValidator
) -> None:
    """PyJWT's cooldown starts at every fetch, the first included: the price of bounding refetches."""
    validator.validate(idp.issue())
    idp.rotate("key-2")

    assert refused(validator, idp.issue(kid="key-2")).reason == "unknown_key"
    assert idp.jwks_fetches == 1
    time.sleep(COOLDOWN + 0.1)
    assert validator.validate(idp.issue(kid="key-2")).subject == "user-1"


def test_an_unknown_kid_is_refused_after_one_refetch_and_does_not_refetch_on_every_request(
    idp: FakeOpenIdProvider, validator: TokenValidator
) -> None:
    validator.validate(idp.issue())
    time.sleep(COOLDOWN + 0.1)
    stranger = new_rsa_key()

    assert refused(validator, idp.issue(kid="ghost", signing_key=stranger)).reason == "unknown_key"
    assert idp.jwks_fetches == 2
    for _ in range(20):
        refused(validator, idp.issue(kid=f"ghost-{_}", signing_key=stranger))
    assert idp.jwks_fetches == 2


def test_a_retired_key_is_refused_once_the_cache_is_refreshed(idp: FakeOpenIdProvider) -> None:
    validator = validator_for(idp, auth_jwks_cache_seconds=60)
    old = idp.issue(kid="key-1")
    idp.rotate("key-2", retire="key-1")
    time.sleep(COOLDOWN + 0.1)
    validator.validate(idp.issue(kid="key-2"))  # first fetch already without key-1
    assert refused(validator, old).reason == "unknown_key"


def test_without_configuration_every_token_is_refused(idp: FakeOpenIdProvider) -> None:
    validator = TokenValidator.from_settings(Settings(auth_oidc_config_url="", auth_audience=AUDIENCE))
    assert refused(validator, idp.issue()).reason == "not_configured"
    no_audience = validator_for(idp, auth_audience="")
    assert refused(no_audience, idp.issue()).reason == "not_configured"


def test_an_unreachable_provider_is_a_503_not_a_refused_token(idp: FakeOpenIdProvider) -> None:
    validator = TokenValidator.from_settings(
        Settings(
            auth_oidc_config_url="http://127.0.0.1:9/v2.0/.well-known/openid-configuration",
            auth_audience=AUDIENCE,
            auth_http_timeout_seconds=2,
        )
    )
    with pytest.raises(IdentityProviderUnavailable) as caught:
        validator.validate(idp.issue())
    assert caught.value.status == 503


def test_the_discovery_url_must_be_https_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        TokenValidator.from_settings(
            Settings(auth_oidc_config_url="http://login.example.com/.well-known/openid-configuration")
        )
