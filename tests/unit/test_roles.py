"""The role table answers as the README shows it, and an API key can do only its scopes."""

from __future__ import annotations

import pytest

from shared.errors import Forbidden
from shared.security.roles import KEY_SCOPES, ROLE_SCOPES, Principal, Role, Scope, allows, require


def person(*roles: Role) -> Principal:
    return Principal(kind="user", subject="user-1", tenant="demo", roles=frozenset(roles))


def key(*scopes: Scope) -> Principal:
    return Principal(kind="api_key", subject="k1", tenant="demo", scopes=frozenset(scopes))


def test_an_owner_may_do_everything() -> None:
    assert all(allows(person(Role.OWNER), scope) for scope in Scope)


def test_an_admin_may_do_everything_but_tenant_wide_actions_and_reading_the_deployment_metrics() -> None:
    everything_else = set(Scope) - {Scope.TENANT_ADMIN, Scope.METRICS_READ}
    assert {scope for scope in Scope if allows(person(Role.ADMIN), scope)} == everything_else


def test_a_builder_builds_agents_and_talks_to_them_but_manages_no_keys_and_reads_no_usage() -> None:
    builder = person(Role.BUILDER)
    assert allows(builder, Scope.AGENTS_ADMIN)
    assert allows(builder, Scope.CONVERSATIONS_WRITE)
    assert not allows(builder, Scope.KEYS_ADMIN)
    assert not allows(builder, Scope.USAGE_READ)


def test_only_owners_and_admins_delete_conversations() -> None:
    allowed = {role for role in Role if allows(person(role), Scope.CONVERSATIONS_ADMIN)}
    assert allowed == {Role.OWNER, Role.ADMIN}, "erasing calls and recordings is not a builder's act"


def test_a_viewer_only_reads() -> None:
    viewer = person(Role.VIEWER)
    assert {scope for scope in Scope if allows(viewer, scope)} == {
        Scope.CONVERSATIONS_READ,
        Scope.AGENTS_READ,
        Scope.USAGE_READ,
    }
    assert not allows(viewer, Scope.AGENTS_ADMIN)


def test_roles_add_up() -> None:
    assert allows(person(Role.VIEWER, Role.BUILDER), Scope.USAGE_READ)
    assert allows(person(Role.VIEWER, Role.BUILDER), Scope.AGENTS_ADMIN)


def test_a_person_with_no_known_role_may_do_nothing() -> None:
    assert not any(allows(person(), scope) for scope in Scope)


def test_an_api_key_may_do_its_scopes_and_nothing_else() -> None:
    writer = key(Scope.CONVERSATIONS_WRITE)
    assert allows(writer, Scope.CONVERSATIONS_WRITE)
    assert not allows(writer, Scope.CONVERSATIONS_READ)
    assert not allows(writer, Scope.AGENTS_ADMIN)


def test_an_api_key_never_acts_for_the_tenant_even_if_a_row_said_so() -> None:
    assert Scope.TENANT_ADMIN not in KEY_SCOPES
    assert not allows(key(Scope.TENANT_ADMIN), Scope.TENANT_ADMIN)


def test_a_key_holds_no_roles_even_when_given_some() -> None:
    odd = Principal(kind="api_key", subject="k1", tenant="demo", roles=frozenset({Role.OWNER}))
    assert not any(allows(odd, scope) for scope in Scope)


def test_refused_is_a_403_naming_the_missing_permission() -> None:
    with pytest.raises(Forbidden, match=r"agents:admin") as refused:
        require(person(Role.VIEWER), Scope.AGENTS_ADMIN)
    assert refused.value.status == 403
    require(person(Role.OWNER), Scope.AGENTS_ADMIN)


def test_every_role_is_in_the_table() -> None:
    assert set(ROLE_SCOPES) == set(Role)
