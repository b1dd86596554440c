"""Where the agent's HTTP tools may reach: allow-listed hosts on public addresses only.

An agent file names URLs, and a caller's words choose the arguments, so a tool call is a request
the product makes on someone else's behalf (server-side request forgery if unchecked). A host must
be on HTTP_TOOL_ALLOWED_HOSTS, every address it resolves to must be public (no private, loopback,
link-local, multicast or reserved ranges, unless HTTP_TOOL_ALLOW_PRIVATE_NETWORKS says so for local
testing), and the request then goes to the address that was checked, so a second DNS answer cannot
swap in another one.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(Exception):
    """The destination is not one the product may call."""


@dataclass(frozen=True)
class EgressPolicy:
    allowed_hosts: tuple[str, ...]
    allow_private_networks: bool = False

    @classmethod
    def from_setting(cls, allowed_hosts: str, allow_private_networks: bool) -> EgressPolicy:
        hosts = tuple(h.strip().lower().rstrip(".") for h in allowed_hosts.split(",") if h.strip())
        return cls(hosts, allow_private_networks)

    def host_allowed(self, host: str) -> bool:
        """`example.com` allows that host; `*.example.com` any host below it (not itself)."""
        host = host.lower().rstrip(".")
        for pattern in self.allowed_hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]):
                    return True
            elif host == pattern:
                return True
        return False

    def address_allowed(self, address: IpAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if self.allow_private_networks:
            return not (address.is_multicast or address.is_unspecified)
        return address.is_global and not address.is_multicast

    def resolve(self, host: str, port: int) -> IpAddress:
        """The address to connect to for `host`, once host and every address it resolves to are allowed."""
        if not self.host_allowed(host):
            raise EgressRefused(f"host {host} is not in HTTP_TOOL_ALLOWED_HOSTS")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise EgressRefused(f"host {host} does not resolve: {error.strerror}") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        refused = sorted({str(a) for a in addresses if not self.address_allowed(a)})
        if refused or not addresses:
            raise EgressRefused(f"host {host} resolves to addresses tools may not reach: {', '.join(refused)}")
        return addresses[0]
