"""HTTP routes matched the way the Functions host matches them (ASP.NET Core routing).

Facts (team notes, durable-local-host.md §12; azure-functions-host `WebJobsRouteBuilder`, ASP.NET
`TreeRouter`/`RoutePrecedence`, Kestrel path decoding):
- every route is `<routePrefix>/<route>`; literal segments match case-insensitively;
- a trailing slash is ignored;
- literal segments win over parameters, constrained parameters over plain ones, catch-alls come
  last, whatever order the functions were registered in;
- the method is a route constraint: a method no route accepts is no match (404), and HEAD is not
  implied by GET;
- Kestrel decodes the path once but leaves `%2F` encoded (a route value may hold `%2F`) and leaves
  percent-escapes that are not UTF-8 as they came.
"""

from __future__ import annotations

import codecs
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import unquote_to_bytes

T = TypeVar("T")

_PARAMETER = re.compile(r"^\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^{}]*)\}$")
_ENCODED_SLASH = re.compile(r"%2[Ff]")


def _is_int(value: str, bits: int) -> bool:
    try:
        number = int(value)
    except ValueError:
        return False
    return value.strip() == value and -(2 ** (bits - 1)) <= number < 2 ** (bits - 1)


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value.strip("{}()"))
    except ValueError:
        return False
    return True


CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": lambda v: _is_int(v, 32),
    "long": lambda v: _is_int(v, 64),
    "bool": lambda v: v.lower() in {"true", "false"},
    "guid": _is_guid,
    "alpha": lambda v: v.isascii() and v.isalpha(),
}
"""The inline constraints the devhost checks; a route using any other is refused at startup."""


class RouteError(ValueError):
    """A route template the devhost cannot serve faithfully."""


@dataclass(frozen=True)
class Segment:
    literal: str | None = None
    name: str | None = None
    constraints: tuple[str, ...] = ()
    optional: bool = False
    catch_all: bool = False

    @property
    def precedence(self) -> int:
        """ASP.NET inbound precedence digit: lower is tried first."""
        if self.literal is not None:
            return 1
        digit = 5 if self.catch_all else 3
        return digit - 1 if self.constraints else digit

    def accepts(self, value: str) -> bool:
        if self.literal is not None:
            return value.lower() == self.literal.lower()
        if not value:
            return False
        return all(CONSTRAINTS[name](value) for name in self.constraints)


def _segment(text: str, template: str) -> Segment:
    match = _PARAMETER.match(text)
    if match is None:
        if "{" in text or "}" in text:
            raise RouteError(f"route {template!r}: segment {text!r} mixes text and parameters (not supported here)")
        return Segment(literal=text)
    rest = match["rest"]
    optional = rest.endswith("?")
    rest = rest.removesuffix("?")
    if "=" in rest:
        raise RouteError(f"route {template!r}: default values are not supported by the devhost")
    constraints = tuple(c for c in rest.split(":") if c)
    unknown = [c for c in constraints if c not in CONSTRAINTS]
    if unknown:
        raise RouteError(f"route {template!r}: constraints {unknown} are not supported by the devhost")
    return Segment(name=match["name"], constraints=constraints, optional=optional, catch_all=bool(match["star"]))


def parse_template(template: str) -> tuple[Segment, ...]:
    """`conversations/{id:guid}/{*rest}` as segments; refuses what the devhost would match wrongly."""
    segments = tuple(_segment(text, template) for text in template.strip("/").split("/") if text)
    for position, segment in enumerate(segments):
        if segment.catch_all and position != len(segments) - 1:
            raise RouteError(f"route {template!r}: a catch-all must be the last segment")
    return segments


def _keep_escaped(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: bytes that are not UTF-8 stay percent-escaped, as Kestrel leaves them."""
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return "".join(f"%{byte:02X}" for byte in bad), error.end


codecs.register_error("devhost-keep-escaped", _keep_escaped)


def decode_segment(raw: str) -> str:
    """One raw path segment decoded as Kestrel decodes the path: `%2F` kept, bad UTF-8 kept escaped."""
    pieces = _ENCODED_SLASH.split(raw)
    return "%2F".join(unquote_to_bytes(piece).decode("utf-8", "devhost-keep-escaped") for piece in pieces)


def path_segments(raw_path: str) -> list[str]:
    """The decoded segments of a raw (still percent-encoded) path, a trailing slash ignored."""
    path = raw_path.split("?", 1)[0]
    trimmed = path.strip("/") if path != "/" else ""
    return [decode_segment(part) for part in trimmed.split("/")] if trimmed else []


@dataclass(frozen=True)
class Route(Generic[T]):
    template: str
    segments: tuple[Segment, ...]
    methods: frozenset[str]
    target: T

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for position, segment in enumerate(self.segments):
            if segment.catch_all:
                rest = "/".join(parts[position:])
                if rest and not segment.accepts(rest):
                    return None
                if rest:
                    values[str(segment.name)] = rest
                return values
            if position >= len(parts):
                return values if all(s.optional for s in self.segments[position:]) else None
            if not segment.accepts(parts[position]):
                return None
            if segment.name is not None:
                values[segment.name] = parts[position]
        return values if len(parts) == len(self.segments) else None


@dataclass
class RouteTable(Generic[T]):
    """Routes in the host's order of precedence; `find` answers the first that takes the request."""

    routes: list[Route[T]] = field(default_factory=list)

    def add(self, template: str, methods: Sequence[str], target: T) -> None:
        route = Route(template, parse_template(template), frozenset(m.upper() for m in methods), target)
        self.routes.append(route)
        self.routes.sort(key=lambda r: ([s.precedence for s in r.segments], r.template.lower()))

    def find(self, method: str, parts: Sequence[str]) -> tuple[T, dict[str, str]] | None:
        for route in self.routes:
            if method.upper() not in route.methods:
                continue
            values = route.match(parts)
            if values is not None:
                return route.target, values
        return None
