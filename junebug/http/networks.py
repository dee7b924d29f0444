"""Which networks callbacks may reach: the operator's allow and deny lists.

With :jbconfig:`callback_allow_networks` and/or
:jbconfig:`callback_deny_networks` set, every connection for a callback POST
resolves the URL's host itself, checks each address against the lists and
connects to an allowed *address*, never to the name again, so a name that
resolves elsewhere a moment later (DNS rebinding) cannot get around the
check.  A denied address is never connected to; the POST fails with
:class:`CallbackRefused`, which delivery treats as permanent.

An address is refused when it is in a denied network, or when there is an
allow list and it is in none of its networks.  IPv4-mapped IPv6 addresses
are checked as the IPv4 address they carry.  Both lists empty (the default)
turns all of this off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from junebug.endpoints import tcp_endpoint
from junebug.errors import ConfigError
from junebug.reactors import TimeTCPReactor

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(Exception):
    """A callback's host is not allowed (or has no address); never retried."""


def parse_networks(name: str, values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings (``10.0.0.0/8``, ``::1``) as networks, or ConfigError."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(f"{name}: {value!r} is not a network ({exc})") from None
    return tuple(networks)


def _plain(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


@attrs.frozen
class CallbackNetworks:
    """The allow and deny lists; :meth:`refusal` judges one address."""

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()

    @classmethod
    def from_lists(cls, allow: Sequence[str], deny: Sequence[str]) -> CallbackNetworks:
        return cls(
            parse_networks("callback_allow_networks", allow),
            parse_networks("callback_deny_networks", deny),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.allow or self.deny)

    def refusal(self, host: str) -> str | None:
        """Why a callback may not connect to the IP address ``host``, or None."""
        try:
            address = _plain(ipaddress.ip_address(host.split("%", 1)[0]))
        except ValueError:
            return f"{host!r} is not an IP address"
        for network in self.deny:
            if address.version == network.version and address in network:
                return f"{address} is in the denied callback network {network}"
        if self.allow and not any(
            address.version == network.version and address in network
            for network in self.allow
        ):
            return f"{address} is not in an allowed callback network"
        return None


@implementer(IResolutionReceiver)
class _Addresses:
    """Collects the addresses of one host name resolution."""

    def __init__(self) -> None:
        self.found: list[IPv4Address | IPv6Address] = []
        self.done: Deferred[list[IPv4Address | IPv6Address]] = Deferred()

    def resolutionBegan(self, resolution: IHostResolution) -> None:  # noqa: N802
        pass

    def addressResolved(self, address: Any) -> None:  # noqa: N802
        if isinstance(address, IPv4Address | IPv6Address):
            self.found.append(address)

    def resolutionComplete(self) -> None:  # noqa: N802
        self.done.callback(self.found)


@implementer(IStreamClientEndpoint)
class GuardedEndpoint:
    """Connects to the first address of ``host`` that ``networks`` allows.

    ``resolver`` defaults to the reactor's ``nameResolver`` (tests pass one).
    """

    def __init__(
        self,
        reactor: TimeTCPReactor,
        host: str,
        port: int,
        networks: CallbackNetworks,
        *,
        timeout: float = 30.0,
        resolver: IHostnameResolver | None = None,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._networks = networks
        self._timeout = timeout
        self._resolver = resolver

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:  # noqa: N803
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _addresses(self) -> list[str]:
        try:
            ipaddress.ip_address(self._host.split("%", 1)[0])
        except ValueError:
            pass
        else:
            return [self._host]
        receiver = _Addresses()
        resolver = self._resolver or self._reactor.nameResolver
        resolver.resolveHostName(receiver, self._host, portNumber=self._port)
        return [address.host for address in await receiver.done]

    async def _connect(self, factory: IProtocolFactory) -> IProtocol:
        addresses = await self._addresses()
        if not addresses:
            raise CallbackRefused(f"no address found for {self._host!r}")
        refusals = []
        for address in addresses:
            refusal = self._networks.refusal(address)
            if refusal is None:
                endpoint = tcp_endpoint(
                    self._reactor, address, self._port, self._timeout
                )
                connected: IProtocol = await endpoint.connect(factory)
                return connected
            refusals.append(refusal)
        raise CallbackRefused(f"{self._host}: {'; '.join(sorted(set(refusals)))}")


@implementer(IAgentEndpointFactory)
class GuardedEndpointFactory:
    """The endpoints of an :class:`~twisted.web.client.Agent` whose
    connections are checked by :class:`GuardedEndpoint` (HTTPS verified
    against the URL's host name, as the agent does by default)."""

    def __init__(
        self,
        reactor: TimeTCPReactor,
        networks: CallbackNetworks,
        tls: BrowserLikePolicyForHTTPS | None = None,
    ) -> None:
        self._reactor = reactor
        self._networks = networks
        self._tls = tls or BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:  # noqa: N802
        host = uri.host.decode("ascii")
        endpoint: IStreamClientEndpoint = GuardedEndpoint(
            self._reactor, host, uri.port, self._networks
        )
        if uri.scheme == b"https":
            creator = self._tls.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint
