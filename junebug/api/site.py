"""The ``Site`` serving the API and ``jb message-api``: the shared HTTP
server (:mod:`junebug.http.server`) answering refusals in the envelope, and
never parsing bodies as HTML forms."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource

from junebug.api.envelope import refusal_body
from junebug.http.server import Gate, LimitedSite, ServerLimits


def api_site(
    resource: IResource,
    reactor: IReactorTime,
    *,
    limits: ServerLimits,
    gate: Gate | None = None,
) -> LimitedSite:
    """A Site for ``resource`` with ``limits``; ``gate`` checks each request
    before its body is read.  Bodies are never parsed as HTML forms (the API
    only takes JSON; twisted.web would otherwise parse each POST's content
    type with the ``email`` package)."""
    return LimitedSite(
        resource,
        reactor=reactor,
        limits=limits,
        error_body=refusal_body,
        gate=gate,
        parsePOSTFormSubmission=False,
    )
