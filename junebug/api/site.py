"""The ``Site`` serving the API: no Nagle delays, no form parsing, each
connection's addresses looked up once."""

from __future__ import annotations

from typing import Any

from twisted.web.http import HTTPChannel
from twisted.web.server import Site


class _NoDelayChannel(HTTPChannel):
    _host: Any = None
    _peer: Any = None

    def connectionMade(self) -> None:  # noqa: N802 - the Twisted name
        super().connectionMade()
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)

    # twisted.web asks for both addresses on every request; the transport
    # builds a new address object each time, and getHost makes a system call.
    def getHost(self) -> Any:  # noqa: N802 - the Twisted name
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def getPeer(self) -> Any:  # noqa: N802 - the Twisted name
        if self._peer is None:
            self._peer = super().getPeer()
        return self._peer


def api_site(resource: Any, reactor: Any = None) -> Site:
    """A Site for ``resource``: responses are written without waiting for
    Nagle's algorithm, and bodies are never parsed as HTML forms (the API only
    takes JSON; twisted.web would otherwise parse each POST's content type with
    the ``email`` package)."""
    site = Site(resource, reactor=reactor, parsePOSTFormSubmission=False)
    site.protocol = _NoDelayChannel  # type: ignore[method-assign,assignment]
    return site
