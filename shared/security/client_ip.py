"""The caller's IP address as Azure's front end saw it, for limits and logs.

On Azure Functions the app's peer is never the caller: the platform's front end accepts the
connection and appends the address it came from to `X-Forwarded-For`, IPv4 as `ip:port`
(github.com/koajs/koa/issues/827), and so does each Azure proxy that may stand in front of it
(Front Door, Application Gateway's `IP:Port` list). Whatever is further left was written by the
client or by proxies we do not run, and can say anything; so the address is the `hops`-th entry
from the right (TRUSTED_PROXY_HOPS), never the first.

Only the last `hops` entries are split off and each may have at most 64 characters; an entry that is
not one address (IPv4 or IPv6, with or without a port, IPv6 bracketed when it has one), a missing
header (local runs) or fewer entries than trusted proxies (a request that went around them) gives
None: the caller cannot be told apart, and the caller of this function decides what that means.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR = "x-forwarded-for"
MAX_ENTRY_CHARACTERS = 64
"""A bracketed IPv6 address with a port has at most 47 + 6 characters."""


def client_ip(headers: Mapping[str, str], hops: int = 1) -> IpAddress | None:
    """The address the outermost of `hops` trusted proxies saw, from the request's (case-insensitive) headers."""
    if hops < 1:
        raise ValueError("at least Azure's own front end stands in front of the app")
    value = headers.get(FORWARDED_FOR)
    if value is None:
        return None
    entries = value.rsplit(",", hops)
    if len(entries) < hops:
        return None
    return _address(entries[-hops].strip())


def _address(entry: str) -> IpAddress | None:
    if len(entry) > MAX_ENTRY_CHARACTERS or "%" in entry:
        return None
    host, separator, port = entry, "", ""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        separator, port = rest[:1], rest[1:]
        if rest and separator != ":":
            return None
    elif entry.count(":") == 1:
        host, separator, port = entry.partition(":")
    if separator and not (port.isascii() and port.isdigit()):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
