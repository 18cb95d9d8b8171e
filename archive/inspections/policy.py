"""Where the inspection browser may go: the SSRF policy.

By default a capture refuses every address that is loopback, private, link-local,
unspecified, multicast or reserved, and the endpoints of the archive's own services
(database, object store, broker, TSA), whatever name leads there. An administrator may
allow listed networks (``EVIDENCE_CAPTURE_ALLOW_NETWORKS``, comma-separated CIDRs); the
archive's own service endpoints stay refused even then.

The policy is checked on the address actually connected to (see
:mod:`ingest.capture.fetch`), never on a name resolved earlier, so a name that resolves
differently the second time (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from archive.errors import InvalidInput
from archive.settings import Settings
from archive.wording import Sentences

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


POLICY_REFUSALS = Sentences("capture_refusal", {
    "resolves_to": "{host} resolves to {reason}",
    "own_service": "{ip} port {port} is one of the archive's own services",
    "network": "{ip} is a {what} address (not allowed by EVIDENCE_CAPTURE_ALLOW_NETWORKS)",
    "unresolved": "{host} does not resolve: {detail}",
}, fields={"host": r"\S+", "ip": r"\S+", "port": r"\d+"})
"""Why the capture policy refuses a destination (a :class:`Refused`'s reason); said in Chinese
in the inspection record (``resolves_to``'s ``reason`` is another of these, or :data:`NOTHING`)."""

NOTHING = "nothing"
"""The reason of a name that resolves to no address at all."""


class Refused(Exception):
    """A destination the policy refuses; ``reason`` says why, in words an officer reads."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated CIDR list; InvalidInput naming a bad entry."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise InvalidInput(f"capture_allow_networks: {part!r} is not a CIDR network",
                               code="invalid_setting") from exc
    return tuple(out)


def _endpoint(url: str | None) -> tuple[str, int] | None:
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if not parts.hostname:
        return None
    default = {"https": 443, "http": 80, "redis": 6379, "rediss": 6379}.get(parts.scheme.split("+")[0], 5432)
    try:
        return parts.hostname, parts.port or default
    except ValueError:
        return None


@dataclass(frozen=True)
class CapturePolicy:
    """The networks a capture may reach and the service endpoints it never may."""

    allowed: tuple[Network, ...] = ()
    own_endpoints: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    """(address, port) pairs of the archive's own services, resolved at start."""

    @classmethod
    def from_settings(cls, settings: Settings) -> CapturePolicy:
        """The policy of ``settings``: allowed networks and the service's own endpoints."""
        own: set[tuple[str, int]] = set()
        for url in (settings.database_url, settings.s3_endpoint, settings.broker_url, settings.tsa_url):
            ep = _endpoint(url)
            if ep is None:
                continue
            try:
                for info in socket.getaddrinfo(ep[0], ep[1], type=socket.SOCK_STREAM):
                    own.add((str(ipaddress.ip_address(info[4][0].split("%")[0])), ep[1]))
            except OSError:
                continue
        return cls(allowed=parse_networks(settings.capture_allow_networks), own_endpoints=frozenset(own))

    def check(self, address: str, port: int) -> None:
        """Raise :class:`Refused` unless the capture may connect to ``address``:``port``."""
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if (str(ip), port) in self.own_endpoints:
            raise Refused(POLICY_REFUSALS.say("own_service", ip=ip, port=port))
        if any(ip in net for net in self.allowed):
            return
        for test, what in ((ip.is_loopback, "loopback"), (ip.is_unspecified, "unspecified"),
                           (ip.is_link_local, "link-local"), (ip.is_multicast, "multicast"),
                           (ip.is_private, "private"), (ip.is_reserved, "reserved")):
            if test:
                raise Refused(POLICY_REFUSALS.say("network", ip=ip, what=what))

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` the policy allows, in resolver order.

        Raises :class:`Refused` when the name does not resolve or every address is refused
        (the reason of the first refusal is given).
        """
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise Refused(POLICY_REFUSALS.say("unresolved", host=host, detail=exc.strerror or exc)) from exc
        allowed, first = [], None
        for info in infos:
            addr = info[4][0]
            try:
                self.check(addr, port)
            except Refused as refused:
                first = first or refused
                continue
            if addr not in allowed:
                allowed.append(addr)
        if not allowed:
            raise Refused(POLICY_REFUSALS.say("resolves_to", host=host, reason=first.reason if first else NOTHING))
        return allowed
