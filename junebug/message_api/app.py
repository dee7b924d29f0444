"""The message API's HTTP side: ``POST {base_url_path}/messages`` and ``/health``.

The request body, the checks, the errors and the ``201 message submitted``
answer are those of Junebug's ``POST /channels/<id>/messages/`` (so
``result.message_id`` is where RapidPro reads the id); errors go through the
same funnel as the main API.  The path is served with and without a trailing
slash.  If ``auth`` is configured, requests must carry its HTTP Basic
credentials.  As in vumi2, ``null`` for one of :data:`NULL_MEANS_ABSENT` is
the same as leaving the key out.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from junebug.api.app import install_error_handlers
from junebug.api.auth import basic_matches
from junebug.api.envelope import render
from junebug.api.guard import RoutableOnly
from junebug.api.schemas import MESSAGE_SEND, read_json, validate
from junebug.errors import JunebugError
from junebug.http.server import Gate, Refusal
from junebug.message_api import health
from junebug.message_api.config import BasicAuthConfig, MessageApiConfig
from junebug.message_api.sending import MessageApiSender

AUTH_REALM = "Junebug message API"
#: Optional request keys whose ``null`` is taken as "not given" (vumi2 reads
#: them as optional values); Junebug's own API refuses ``null`` for them.
NULL_MEANS_ABSENT = ("reply_to", "event_url", "event_auth_token")


class Unauthorized(JunebugError):
    """The send request lacks the configured HTTP Basic credentials."""

    name = "Unauthorized"
    description = "unauthorized"
    code = 401


class RequestTimeout(JunebugError):
    """``request_timeout`` ran out before the message reached the broker."""

    name = "RequestTimeout"
    description = "request timed out"
    code = 504


class OutcomeUnknown(JunebugError):
    """``request_timeout`` ran out after the message was handed to the broker
    and before the broker confirmed it: it may or may not be sent."""

    name = "OutcomeUnknown"
    description = "outcome unknown"
    code = 504


CHALLENGE = f'Basic realm="{AUTH_REALM}", charset="UTF-8"'.encode()
UNAUTHORIZED_TEXT = "HTTP Basic credentials are missing or wrong"


def carries(request: IRequest, auth: BasicAuthConfig) -> bool:
    """Whether the request carries the credentials of ``auth``."""
    header = request.getHeader(b"authorization")
    return basic_matches(header, auth.username, auth.password)


def check_auth(request: IRequest, auth: BasicAuthConfig) -> None:
    """Raise :class:`Unauthorized` unless the request carries ``auth``."""
    if not carries(request, auth):
        request.setHeader(b"WWW-Authenticate", CHALLENGE)
        raise Unauthorized(UNAUTHORIZED_TEXT)


#: Served without credentials (for load balancers).
OPEN_PATHS = frozenset({b"/health"})


def auth_gate(auth: BasicAuthConfig | None) -> Gate | None:
    """The HTTP server's check of ``auth`` before a body is read; every path
    but :data:`OPEN_PATHS` needs it."""
    if auth is None:
        return None
    refusal = Refusal(
        Unauthorized.code,
        Unauthorized.name,
        Unauthorized.description,
        UNAUTHORIZED_TEXT,
        ((b"WWW-Authenticate", CHALLENGE),),
    )

    def gate(request: IRequest, method: bytes, uri: bytes) -> Refusal | None:
        if uri.partition(b"?")[0] in OPEN_PATHS or carries(request, auth):
            return None
        return refusal

    return gate


def without_nulls(body: Any) -> Any:
    """``body`` without the :data:`NULL_MEANS_ABSENT` keys that are ``null``."""
    if not isinstance(body, dict):
        return body  # the schema check refuses it
    return {
        key: value
        for key, value in body.items()
        if value is not None or key not in NULL_MEANS_ABSENT
    }


class MessageApiApp:
    """The Klein app of one message API."""

    log = Logger(namespace="junebug.message_api")

    def __init__(
        self, config: MessageApiConfig, sender: MessageApiSender, clock: IReactorTime
    ) -> None:
        self.config = config
        self.sender = sender
        self.clock = clock
        self.app = Klein()
        install_error_handlers(self.app, self.log)
        health.install(self.app, sender.broker)
        route = config.route

        @self.app.route(route, methods=["POST"], endpoint="send")
        @self.app.route(route + "/", methods=["POST"], endpoint="send_slash")
        async def send(request: IRequest, **path: str) -> bytes:
            return await self.send_message(request)

    def resource(self) -> Any:
        return RoutableOnly(self.app)

    async def send_message(self, request: IRequest) -> bytes:
        """Accept one MT message (any ``<channel_id>`` in the path is ignored)."""
        config = self.config
        if config.auth is not None:
            check_auth(request, config.auth)
        body: dict[str, Any] = without_nulls(read_json(request, config.max_body_size))
        validate(body, MESSAGE_SEND)
        handed_over: list[str] = []
        sending: Deferred[dict[str, Any]] = Deferred.fromCoroutine(
            self.sender.send(
                config.connector_name,
                {},
                body,
                require_destination=False,
                on_publish=lambda msg: handed_over.append(msg["message_id"]),
            )
        )
        timed_out = False

        def on_timeout(result: Any, timeout: float) -> Any:
            # Whatever the cancelled send raised (CancelledError, or the
            # BrokerError the RabbitMQ broker makes of it) is the timeout.
            nonlocal timed_out
            timed_out = True
            return result

        sending.addTimeout(config.request_timeout, self.clock, on_timeout)
        try:
            view = await sending
        except Exception:
            if not timed_out:
                raise
            seconds = f"{config.request_timeout:g}s"
            if handed_over:
                raise OutcomeUnknown(
                    f"Message {handed_over[0]} was handed to RabbitMQ but not "
                    f"confirmed within {seconds}: it may still be sent, and "
                    f"sending it again may deliver it twice"
                ) from None
            raise RequestTimeout(
                f"The message was not sent: the request was not handled "
                f"within {seconds}"
            ) from None
        return render(request, 201, "message submitted", view)
