"""The client endpoint for a TCP host: by address family, or by name.

An IPv4 or IPv6 address is dialled as it is; a host name is resolved (by the
reactor's resolver) to all its IPv4 and IPv6 addresses, which are tried the
"happy eyeballs" way (``HostnameEndpoint``): a name that resolves only to
IPv6, or whose IPv4 address does not answer, still connects.
"""

from __future__ import annotations

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)
from twisted.internet.interfaces import IStreamClientEndpoint

from junebug.reactors import TimeTCPReactor

__all__ = ["tcp_endpoint"]


def tcp_endpoint(
    reactor: TimeTCPReactor, host: str, port: int, timeout: float
) -> IStreamClientEndpoint:
    """An endpoint that dials ``host`` (an address or a name) on ``port``."""
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    return HostnameEndpoint(reactor, host, port, timeout=timeout)
