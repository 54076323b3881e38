"""Where a webhook may be sent: the URL rules, and the addresses a host may resolve to.

Checked when an endpoint is registered or its URL changed, and again before every attempt: a name that
resolved to a public address yesterday may resolve to 127.0.0.1 today (DNS rebinding), so each attempt
connects to an address validated a moment before (``resolve_target``), sending the hostname as Host and
TLS SNI. ``WEBHOOK_ALLOW_PRIVATE_TARGETS=true`` (local development, tests) allows ``http`` and every
address; production allows ``https`` to global unicast addresses only.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from wallet_project.core import errors

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services (also caught by the ranges below; named so a reader sees they are covered).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# A host made of digits, dots and hex letters with a leading 0x or 0: an IPv4 address in a spelling
# other than dotted decimal (2130706433, 0177.0.0.1, 0x7f.1), which resolvers read as an address.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """A checked URL, split into the parts a request needs."""

    url: str
    scheme: str
    host: str  # the hostname (an IPv6 literal without brackets)
    port: int
    path: str  # path and query, as sent

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _forbidden(reason: str) -> errors.WebhookTargetForbidden:
    return errors.WebhookTargetForbidden(f"webhook URL refused: {reason}", errors={"url": [reason]})


def _allow_private() -> bool:
    return bool(settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)


def parse_target(url: str) -> Target:
    """The URL's parts, or WEBHOOK_TARGET_FORBIDDEN: scheme, credentials, host and port rules (no DNS)."""
    if len(url) > MAX_URL_LENGTH:
        raise _forbidden(f"longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _forbidden("only printable ASCII without blanks (encode international names as punycode)")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _forbidden(f"malformed ({exc})")
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if _allow_private() else ("https",)
    if scheme not in allowed_schemes:
        raise _forbidden("the scheme must be https" if scheme != "https" else "unsupported scheme")
    if "@" in parts.netloc:
        raise _forbidden("credentials in the URL are not allowed (authenticate with the signature)")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _forbidden("no host")
    if port == 0:
        raise _forbidden("port 0")
    if parts.fragment:
        raise _forbidden("a fragment is never sent; leave it out")
    literal = ip_literal(host)
    if "[" in parts.netloc and not isinstance(literal, ipaddress.IPv6Address):
        # urlsplit takes an "IPvFuture" literal ("[v1.example.com]") and returns what is inside as a
        # name; the HTTP client refuses it. Brackets hold an IPv6 address and nothing else.
        raise _forbidden("not a valid host name (brackets hold an IPv6 address)")
    if literal is None:
        if _NUMERIC_HOST.match(host):
            raise _forbidden("an IPv4 address must be written in dotted decimal")
        labels = host.split(".")
        if not all(_HOST_LABEL.match(label) for label in labels):
            raise _forbidden("not a valid host name")
    elif not _allow_private():
        address_problem = _address_problem(literal)
        if address_problem:
            raise _forbidden(address_problem)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(url=url, scheme=scheme, host=host.lower(), port=port or (443 if scheme == "https" else 80), path=path)


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), which is where it really goes."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _address_problem(address: IPAddress) -> str:
    """Why a webhook may not go to ``address`` ("" if it may): anything but a global unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return f"{address} is a scoped (link-local) address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            problem = _address_problem(embedded)
            return f"{address} carries {problem}" if problem else ""
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("private", address.is_private),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("unspecified", address.is_unspecified),
    ):
        if flag:
            return f"{address} is a {kind} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return ""


def resolve_target(target: Target) -> list[str]:
    """The addresses to connect to, each one allowed; WEBHOOK_TARGET_FORBIDDEN if the host resolves to
    none or to any address that is not (one forbidden address refuses the host: a resolver may rotate)."""
    literal = ip_literal(target.host)
    if literal is not None:
        return [str(literal)]
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _forbidden(f"{target.host} does not resolve ({exc})")
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = str(sockaddr[0])
        if text not in addresses:
            addresses.append(text)
    if not _allow_private():
        for text in addresses:
            problem = _address_problem(ipaddress.ip_address(text.split("%", 1)[0]))
            if problem:
                raise _forbidden(f"{target.host} resolves to {problem}")
    if not addresses:
        raise _forbidden(f"{target.host} does not resolve")
    return addresses


def check_target(url: str) -> Target:
    """Registration: the URL's rules and, unless private targets are allowed, where its host resolves now."""
    target = parse_target(url)
    if not _allow_private():
        resolve_target(target)
    return target
