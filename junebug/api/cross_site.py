"""Refusing changes that another web site makes through an operator's browser.

With the dashboard on, browsers hold the API's Basic credentials (or reach a
Junebug on a private interface), so a page on any other site could make the
browser send a ``POST`` there: a form posting a JSON-looking ``text/plain``
body needs no script and no CORS permission, and the API reads any body as
JSON.  :class:`CrossSiteGuard` refuses every request but ``GET``, ``HEAD`` and
``OPTIONS`` that a browser marks as coming from another site:

* ``Sec-Fetch-Site`` (sent by current browsers) other than ``same-origin``
  or ``none`` (typed by the user);
* otherwise an ``Origin`` that is not this server's own (``null``, or
  another host or port than the ``Host`` asked for; the scheme is not
  compared, as a proxy that ends TLS sees plain HTTP for an ``https``
  origin).

Clients that are not browsers (curl, RapidPro, vumi applications) send
neither header and are never refused.  The guard is installed only with the
dashboard on (see :meth:`junebug.api.app.JunebugApi.resource`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from junebug.api.envelope import error_result, render

SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})
SAME_SITE_FETCHES = frozenset({b"same-origin", b"none"})


def _same_origin(origin: bytes, host: bytes | None) -> bool:
    try:
        parts = urlsplit(origin.decode("ascii"))
    except UnicodeDecodeError:
        return False
    if parts.scheme not in ("http", "https") or host is None:
        return False
    return parts.netloc.lower() == host.decode("ascii", "replace").lower()


def from_another_site(request: IRequest) -> bool:
    """Whether a browser says ``request`` changes something for another site."""
    if request.method in SAFE_METHODS:
        return False
    fetch_site = request.getHeader(b"sec-fetch-site")
    if fetch_site is not None:
        return fetch_site.strip().lower() not in SAME_SITE_FETCHES
    origin = request.getHeader(b"origin")
    if origin is None:
        return False
    return not _same_origin(origin.strip(), request.getHeader(b"host"))


class CrossSiteGuard(Resource):
    """Answers 403 ``CrossSiteRequest`` to :func:`from_another_site` requests."""

    isLeaf = True  # noqa: N815 - the twisted.web name

    def __init__(self, wrapped: Any) -> None:
        super().__init__()
        self._wrapped = wrapped

    def render(self, request: IRequest) -> Any:
        if not from_another_site(request):
            return self._wrapped.render(request)
        error = {
            "type": "CrossSiteRequest",
            "message": "A browser sent this change from another site",
        }
        return render(request, 403, "forbidden", error_result([error]))
