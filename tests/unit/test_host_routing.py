"""The devhost's routing and request rules, pinned to what the Functions host does (issue 13, finding 11).

Facts: the team notes, durable-local-host.md §12 (azure-functions-host `WebJobsRouteBuilder` and
`ToRpcHttp`, ASP.NET Core `TreeRouter`/`RoutePrecedence`, Kestrel path decoding,
Microsoft.Extensions.Primitives `StringValues.ToString()`).
"""

from __future__ import annotations

import pytest

from devhost.http_triggers import joined
from devhost.routing import RouteError, RouteTable, path_segments


def _table(*routes: tuple[str, tuple[str, ...]]) -> RouteTable[str]:
    table: RouteTable[str] = RouteTable()
    for template, methods in routes:
        table.add(template, methods, template)
    return table


def test_finding_11_a_literal_segment_wins_over_a_parameter_whatever_the_registration_order() -> None:
    """ASP.NET orders literal segments before parameters (RoutePrecedence); aiohttp went by registration."""
    for order in [(0, 1), (1, 0)]:
        routes = [("api/conversations/{id}", ("GET",)), ("api/conversations/stats", ("GET",))]
        table = _table(*(routes[i] for i in order))
        assert table.find("GET", ["api", "conversations", "stats"]) == ("api/conversations/stats", {})
        assert table.find("GET", ["api", "conversations", "c1"]) == ("api/conversations/{id}", {"id": "c1"})


def test_finding_11_literals_match_case_insensitively_and_a_trailing_slash_is_ignored() -> None:
    table = _table(("api/conversations/{id}/turns", ("POST",)))
    assert table.find("POST", path_segments("/API/Conversations/Ab/TURNS/")) == (
        "api/conversations/{id}/turns",
        {"id": "Ab"},
    )


def test_finding_11_a_method_no_route_accepts_is_no_match_and_head_is_not_get() -> None:
    """The method is a route constraint (`HttpMethodRouteConstraint`): 404, never 405, no implicit HEAD."""
    table = _table(("api/health", ("GET",)))
    assert table.find("GET", ["api", "health"]) is not None
    assert table.find("HEAD", ["api", "health"]) is None
    assert table.find("POST", ["api", "health"]) is None


def test_finding_11_a_method_mismatch_falls_through_to_a_route_that_takes_the_method() -> None:
    table = _table(("api/items/{id}", ("POST",)), ("api/items/special", ("GET",)))
    assert table.find("POST", ["api", "items", "special"]) == ("api/items/{id}", {"id": "special"})


def test_constrained_parameters_come_before_plain_ones_and_catch_alls_last() -> None:
    table = _table(
        ("api/files/{*rest}", ("GET",)),
        ("api/files/{name}", ("GET",)),
        ("api/files/{number:int}", ("GET",)),
    )
    assert table.find("GET", ["api", "files", "42"]) == ("api/files/{number:int}", {"number": "42"})
    assert table.find("GET", ["api", "files", "x"]) == ("api/files/{name}", {"name": "x"})
    assert table.find("GET", ["api", "files", "a", "b"]) == ("api/files/{*rest}", {"rest": "a/b"})


def test_optional_parameters_may_be_absent() -> None:
    table = _table(("api/items/{id?}", ("GET",)))
    assert table.find("GET", ["api", "items"]) == ("api/items/{id?}", {})
    assert table.find("GET", ["api", "items", "7"]) == ("api/items/{id?}", {"id": "7"})


def test_route_values_are_decoded_as_kestrel_decodes_the_path() -> None:
    """Kestrel leaves `%2F` encoded and keeps percent-escapes that are not UTF-8 as they came."""
    assert path_segments("/api/a%20b/c%2Fd/%C3%A9/%FF") == ["api", "a b", "c%2Fd", "é", "%FF"]


@pytest.mark.parametrize("template", ["api/{a}.{b}", "api/{id=1}", "api/{id:regex(x)}", "api/{*rest}/more"])
def test_routes_the_devhost_would_match_wrongly_are_refused_at_startup(template: str) -> None:
    with pytest.raises(RouteError):
        _table((template, ("GET",)))


def test_finding_11_repeated_query_keys_join_with_commas_and_empty_values_drop() -> None:
    """`StringValues.ToString()` skips empty values; `ToRpcHttp` adds only non-empty ones."""
    pairs = [("a", "1"), ("a", ""), ("a", "2"), ("b", ""), ("C", "x")]
    assert joined(pairs, lower_keys=False) == {"a": "1,2", "C": "x"}


def test_finding_11_header_keys_are_lowercased_and_repeats_joined() -> None:
    pairs = [("X-Dup", "one"), ("x-dup", "two"), ("Content-Type", "application/json")]
    assert joined(pairs, lower_keys=True) == {"x-dup": "one,two", "content-type": "application/json"}
