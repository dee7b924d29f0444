"""The errors Junebug raises on purpose and handles in another module.

::

    JunebugError                      rendered by the API as {type, message}
    ├── JsonDecodeError               400 json decode error
    ├── ApiUsageError                 400 api usage error
    ├── InvalidBody                   400 api usage error (the schema's errors)
    ├── BodyTooLarge                  413 request body too large
    ├── MessageNotFound               400 message not found
    │   └── UnknownMessage            404 message not found (message logs)
    ├── MessageTooLong                400 message too long
    ├── OutboundMessageNotFound       404 message not found (cancelling)
    ├── MessageAlreadySent            409 message already sent
    ├── InvalidChannelType            400 invalid channel type
    ├── InvalidChannelConfig          400 invalid channel config
    ├── ChannelNotFound               404 channel not found
    ├── InvalidRouterType             400 invalid router type
    ├── InvalidRouterConfig           400 invalid router config
    ├── InvalidRouterDestinationConfig 400 invalid router destination config
    ├── RouterNotFound                404 router not found
    ├── DestinationNotFound           404 destination not found
    ├── AmqpConnectionError           503 amqp connection error
    ├── AmqpOutcomeUnknown            504 amqp outcome unknown
    ├── StoreUnavailable              503 store unavailable
    └── OwnerUnavailable              503 owner unavailable (junebug.cluster)

    ConfigError                       bad configuration; the CLI exits with code 2
    BrokerError                       the message broker failed an operation
    AmqpError                         the AMQP client: a channel or connection closed
    ├── ChannelClosedError            the channel is closed
    ├── ConnectionClosedError         the connection is closed or was lost
    ├── PublishRefused                the broker nacked a publish
    └── ConfirmTimeout                no confirm within the channel's limit
    ├── BrokerBlocked                 RabbitMQ refuses publishing (nothing sent)
    └── PublishOutcomeUnknown         sent, but the confirm never came
    TemporaryFailure                  try this message again later (requeued)
    ├── DeliveryLost                  the delivery being handled died
    ├── TransportStopped              the SMPP transport is stopping
    └── SmscUnavailable               no SMPP bind within submit_timeout

Errors raised and caught inside one protocol's code stay with it: AMQP frame
errors (:mod:`junebug.amqp.frames`), SMPP PDU, codec and session errors
(:mod:`junebug.transports.smpp`), XMPP SASL and TLS errors, HTTP client errors
(:mod:`junebug.http`), the Redis client's (:mod:`junebug.stores.resp`), and the
message API dialect's own ``Unauthorized``, ``RequestTimeout`` and
``OutcomeUnknown`` (:mod:`junebug.message_api.app`, rendered in that
dialect's format).

A consumer treats :data:`RETRY_LATER` (``TemporaryFailure``, and a store or
broker that is away) as "try again later": the message goes back to its
queue after a pause and never counts towards ``<queue>.failed``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class JunebugError(Exception):
    """An error with an API name, description and HTTP status."""

    name: ClassVar[str] = "JunebugError"
    description: ClassVar[str] = "generic error"
    code: ClassVar[int] = 500


class JsonDecodeError(JunebugError):
    name = "JsonDecodeError"
    description = "json decode error"
    code = 400


class ApiUsageError(JunebugError):
    name = "ApiUsageError"
    description = "api usage error"
    code = 400


class BodyTooLarge(JunebugError):
    name = "BodyTooLarge"
    description = "request body too large"
    code = 413


class MessageNotFound(JunebugError):
    name = "MessageNotFound"
    description = "message not found"
    code = 400


class UnknownMessage(MessageNotFound):
    """A message id the owner never had (or whose record expired)."""

    code = 404


class MessageTooLong(JunebugError):
    name = "MessageTooLong"
    description = "message too long"
    code = 400


class OutboundMessageNotFound(JunebugError):
    """No outbound record of that id (cancelling: 404, unlike the original's
    400 ``MessageNotFound`` of a reply to an unknown message)."""

    name = "MessageNotFound"
    description = "message not found"
    code = 404


class MessageAlreadySent(JunebugError):
    """The message was handed to the transport: too late to cancel it."""

    name = "MessageAlreadySent"
    description = "message already sent"
    code = 409


class InvalidChannelType(JunebugError):
    name = "InvalidChannelType"
    description = "invalid channel type"
    code = 400


class InvalidChannelConfig(JunebugError):
    name = "InvalidChannelConfig"
    description = "invalid channel config"
    code = 400


class ChannelNotFound(JunebugError):
    name = "ChannelNotFound"
    description = "channel not found"
    code = 404


class InvalidRouterType(JunebugError):
    name = "InvalidRouterType"
    description = "invalid router type"
    code = 400


class InvalidRouterConfig(JunebugError):
    name = "InvalidRouterConfig"
    description = "invalid router config"
    code = 400


class InvalidRouterDestinationConfig(JunebugError):
    name = "InvalidRouterDestinationConfig"
    description = "invalid router destination config"
    code = 400


class RouterNotFound(JunebugError):
    name = "RouterNotFound"
    description = "router not found"
    code = 404


class DestinationNotFound(JunebugError):
    name = "DestinationNotFound"
    description = "destination not found"
    code = 404


class AmqpConnectionError(JunebugError):
    """The broker is unreachable, so a message could not be accepted.

    The original answered 500; a 503 tells clients the request may be retried.
    """

    name = "AmqpConnectionError"
    description = "amqp connection error"
    code = 503


class AmqpOutcomeUnknown(JunebugError):
    """The message was handed to the broker but its confirm did not come in
    time: it may still be delivered, so resending it may send it twice."""

    name = "AmqpOutcomeUnknown"
    description = "amqp outcome unknown"
    code = 504


class InvalidBody(JunebugError):
    """A body that does not match its schema; rendered with ``invalid_body``."""

    name = "invalid_body"
    description = "api usage error"
    code = 400

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid body")
        self.errors = errors


class StoreUnavailable(JunebugError):
    name = "StoreUnavailable"
    description = "store unavailable"
    code = 503


class OwnerUnavailable(JunebugError):
    """The process running a channel did not answer a change sent to it."""

    name = "OwnerUnavailable"
    description = "owner unavailable"
    code = 503


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the field."""


class BrokerError(Exception):
    """The message broker could not carry out an operation."""


class AmqpError(Exception):
    """The AMQP client's errors (:mod:`junebug.amqp.client`): a channel or
    the connection was closed, by the broker or by us."""

    def __init__(self, text: str, reply_code: int = 0) -> None:
        super().__init__(text)
        self.reply_code = reply_code


class ChannelClosedError(AmqpError):
    """The channel is closed (the text has the broker's reason, if any)."""


class ConnectionClosedError(AmqpError):
    """The connection is closed or was lost."""


class PublishRefused(AmqpError):
    """The broker answered a publish with ``basic.nack``."""


class ConfirmTimeout(AmqpError):
    """The broker did not confirm a publish within the channel's limit."""


class BrokerBlocked(BrokerError):
    """RabbitMQ blocks publishing (a memory or disk alarm); nothing was sent."""


class PublishOutcomeUnknown(BrokerError):
    """A message was written to the broker but not confirmed in time; the
    broker may still take it (e.g. when a memory alarm clears)."""


class TemporaryFailure(Exception):
    """A message cannot be handled now but may be later (a peer is down, the
    transport is stopping).  Consumers put it back in its queue after a short
    pause, without counting it as a failure, so it never ends in ``.failed``.
    """


class DeliveryLost(TemporaryFailure):
    """The delivery a handler works on died with its channel; the broker
    delivers the message again, so the handler must not carry on."""


class TransportStopped(TemporaryFailure):
    """The transport is stopping: the message goes back to the queue."""


class SmscUnavailable(TemporaryFailure):
    """No bound session within ``submit_timeout``: the message is requeued."""


#: What a message handler may raise to have its message requeued after a
#: pause without a strike: the handler is fine, something it needs is away
#: (Redis restarting, RabbitMQ reconnecting, a peer down).
RETRY_LATER: tuple[type[Exception], ...] = (
    TemporaryFailure,
    StoreUnavailable,
    BrokerError,
)

#: What a backend that is away raises (Redis, RabbitMQ).
BACKEND_AWAY: tuple[type[Exception], ...] = (StoreUnavailable, BrokerError)


def refusal(
    exc: Exception, what: str, outcome: str = "nothing was changed"
) -> Exception:
    """The error the API answers when ``what`` failed with ``exc`` and was
    undone: 503 for a backend that is away, ``exc`` itself otherwise."""
    if isinstance(exc, BrokerError):
        return AmqpConnectionError(
            f"{what}: the message broker is unreachable ({exc}); {outcome}"
        )
    if isinstance(exc, StoreUnavailable):
        return StoreUnavailable(f"{what}: {exc}; {outcome}")
    return exc
