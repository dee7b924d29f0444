"""Optional authentication of the management API (off by default).

With ``api_token`` set, requests must carry ``Authorization: Token <token>``;
with ``api_username``/``api_password`` set, HTTP Basic with those credentials is
accepted too.  ``/health`` stays open for load balancers.  Failures are a 401 in
the usual envelope, with a ``WWW-Authenticate`` challenge for Basic.

:func:`auth_gate` checks as soon as a request's headers are in, before its body
is read (see :mod:`junebug.http.server`); :class:`AuthenticatingResource`
makes the same check for the resource alone (as tests drive it).
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from junebug.api.envelope import error_result, render
from junebug.config import JunebugConfig
from junebug.http.server import Gate, Refusal

OPEN_PATHS = frozenset({b"/health"})


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def authorised(header: bytes | None, config: JunebugConfig) -> bool:
    """Whether an ``Authorization`` header satisfies the configured credentials."""
    if not header:
        return False
    scheme, _, value = header.decode("latin-1").partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "token" and config.api_token:
        return _equal(value, config.api_token)
    if scheme == "basic" and config.api_username and config.api_password:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError:
            return False
        user, _, password = decoded.partition(":")
        return _equal(user, config.api_username) and _equal(
            password, config.api_password
        )
    return False


def auth_enabled(config: JunebugConfig) -> bool:
    return bool(config.api_token or (config.api_username and config.api_password))


def _refusal(config: JunebugConfig) -> Refusal:
    headers = ((b"WWW-Authenticate", b'Basic realm="junebug"'),)
    return Refusal(
        401,
        "Unauthorized",
        "unauthorized",
        "Authentication required",
        headers if config.api_username else (),
    )


def auth_gate(config: JunebugConfig) -> Gate | None:
    """The HTTP server's check of credentials before a body is read (None
    without configured credentials)."""
    if not auth_enabled(config):
        return None
    refusal = _refusal(config)

    def gate(request: IRequest, method: bytes, uri: bytes) -> Refusal | None:
        if uri.partition(b"?")[0] in OPEN_PATHS or authorised(
            request.getHeader(b"authorization"), config
        ):
            return None
        return refusal

    return gate


class AuthenticatingResource(Resource):
    """Checks credentials, then hands the request to the wrapped resource."""

    isLeaf = True  # noqa: N815 - the twisted.web name

    def __init__(self, wrapped: Any, config: JunebugConfig) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._config = config

    def render(self, request: IRequest) -> Any:
        if request.path in OPEN_PATHS or authorised(
            request.getHeader(b"authorization"), self._config
        ):
            return self._wrapped.render(request)
        if self._config.api_username:
            request.setHeader(b"WWW-Authenticate", b'Basic realm="junebug"')
        error = {"type": "Unauthorized", "message": "Authentication required"}
        return render(request, 401, "unauthorized", error_result([error]))
