"""The ``Site`` serving the API: no Nagle delays, no form parsing."""

from __future__ import annotations

from typing import Any

from twisted.web.http import HTTPChannel
from twisted.web.server import Site


class _NoDelayChannel(HTTPChannel):
    def connectionMade(self) -> None:  # noqa: N802 - the Twisted name
        super().connectionMade()
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)


def api_site(resource: Any, reactor: Any = None) -> Site:
    """A Site for ``resource``: responses are written without waiting for
    Nagle's algorithm, and bodies are never parsed as HTML forms (the API only
    takes JSON; twisted.web would otherwise parse each POST's content type with
    the ``email`` package)."""
    site = Site(resource, reactor=reactor, parsePOSTFormSubmission=False)
    site.protocol = _NoDelayChannel  # type: ignore[method-assign,assignment]
    return site
