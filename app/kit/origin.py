"""The service's own address for the links it hands out: PUBLIC_URL, or the request's.

Without PUBLIC_URL, a link goes back where its request came in: the scheme, the Host
header (port included) or, without one, the address the server listens on. Behind a load
balancer that terminates TLS, the request arrives as plain HTTP from the balancer, so its
X-Forwarded-Proto, -Host and -Port are believed, but only from the peers TRUSTED_PROXIES
lists: anyone else could point the links at a host of their choosing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from starlette.requests import HTTPConnection

# A host name or IPv4 address, or a bracketed IPv6 address, with an optional port.
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def trusted(client_host: str | None, proxies: Sequence[str]) -> bool:
    """Whether the peer `client_host` is one of `proxies` (IPs or networks, or "*")."""
    if "*" in proxies:
        return True
    if not client_host or not proxies:
        return False
    try:
        address = ipaddress.ip_address(client_host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(item, strict=False) for item in proxies)


def _first(value: str | None) -> str | None:
    # A chain of proxies appends: the first value is what the client itself used.
    if not value:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


def _with_port(host: str, port: str | None, scheme: str) -> str:
    has_port = "]:" in host if host.startswith("[") else ":" in host
    if has_port or not port or not port.isdigit():
        return host
    return host if int(port) == _DEFAULT_PORTS[scheme] else f"{host}:{port}"


def request_base(connection: HTTPConnection, trusted_proxies: Sequence[str]) -> str:
    """`scheme://host[:port]` as the client reached this server."""
    headers = connection.headers
    scheme = _SCHEMES.get(connection.url.scheme, "http")
    host = headers.get("host")
    port: str | None = None
    client = connection.client
    if trusted(client.host if client else None, trusted_proxies):
        forwarded_scheme = (_first(headers.get("x-forwarded-proto")) or "").lower()
        scheme = _SCHEMES.get(forwarded_scheme, scheme)
        host = _first(headers.get("x-forwarded-host")) or host
        port = _first(headers.get("x-forwarded-port"))
    if not host or not _HOST.match(host):
        server = connection.scope.get("server")
        if not server:
            return ""
        address, server_port = server
        host = f"[{address}]" if ":" in address else address
        port = str(server_port)
    return f"{scheme}://{_with_port(host.lower(), port, scheme)}"


def public_base(
    public_url: str | None, connection: HTTPConnection | None, trusted_proxies: Sequence[str]
) -> str:
    """PUBLIC_URL when set; else the request's base; else "" (links relative to the host)."""
    if public_url:
        return public_url.rstrip("/")
    if connection is None:
        return ""
    return request_base(connection, trusted_proxies)


def client_address(connection: HTTPConnection, trusted_proxies: Sequence[str]) -> str:
    """The address a request came from, for limits on traffic nobody is known for: the
    peer; behind trusted proxies, the last X-Forwarded-For entry that is not one of them
    (what the outermost trusted proxy saw; earlier entries are the client's own word)."""
    client = connection.client
    address = client.host if client else ""
    if not trusted(address, trusted_proxies):
        return address
    forwarded = connection.headers.get("x-forwarded-for", "")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        address = hop
        if not trusted(hop, trusted_proxies) or "*" in trusted_proxies:
            break
    return address
