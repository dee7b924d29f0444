"""Optional authentication of the management API (off by default).

With ``api_token`` set, requests must carry ``Authorization: Token <token>``;
with ``api_username``/``api_password`` set, HTTP Basic with those credentials is
accepted too.  ``/health`` and its probes stay open for load balancers, and
the Kannel and Jasmin send routes (:data:`junebug.dialects.PATHS`) for their
clients: each of their requests carries its send user's credentials.
Failures are a 401 in the usual envelope, with a ``WWW-Authenticate``
challenge for Basic.

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

from junebug import dialects
from junebug.api.envelope import error_result, render
from junebug.api.readiness import PROBE_PATHS
from junebug.config import JunebugConfig
from junebug.http.server import Gate, Refusal

OPEN_PATHS = frozenset({b"/health"}) | PROBE_PATHS | dialects.PATHS


def _equal(given: bytes, expected: str) -> bool:
    return hmac.compare_digest(given, expected.encode("utf-8"))


def basic_credentials(header: bytes | None) -> tuple[bytes, bytes] | None:
    """The (user, password) of an HTTP Basic ``Authorization`` header."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user, password


def basic_matches(header: bytes | None, username: str, password: str) -> bool:
    """Whether ``header`` carries HTTP Basic ``username`` and ``password``.

    Both comparisons always run, in constant time, so the answer's timing
    says nothing about which of the two was wrong.
    """
    given = basic_credentials(header)
    user_ok = _equal(given[0] if given else b"", username)
    password_ok = _equal(given[1] if given else b"", password)
    return given is not None and user_ok and password_ok


def authorised(header: bytes | None, config: JunebugConfig) -> bool:
    """Whether an ``Authorization`` header satisfies the configured credentials."""
    if not header:
        return False
    scheme, _, value = header.partition(b" ")
    scheme = scheme.lower()
    if scheme == b"token" and config.api_token:
        return _equal(value.strip(), config.api_token)
    if scheme == b"basic" and config.api_username and config.api_password:
        return basic_matches(header, config.api_username, config.api_password)
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
