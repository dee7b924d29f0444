"""The ``dmark`` channel type (vumi's ``DmarkUssdTransport``): USSD over HTTP.

Dmark calls ``web_path`` once per user input, with the query parameters
``transactionId``, ``msisdn``, ``ussdServiceCode``, ``ussdRequestString``,
``transactionTime``, ``creationTime`` and ``response``, and waits for the
answer on the same request.  Each request becomes an MO message whose
``message_id`` is the request's id; the reply to it (``in_reply_to``) answers
the request with ``{"responseString": <content>, "action": "request"}``, or
``"action": "end"`` when the reply closes the session (``session_event:
close``, i.e. ``channel_data.continue_session: false`` in the API).

The first request of a transaction is a ``new`` session (content null: it
carries the dialled code), later ones ``resume``.  A request that gets no reply
in ``request_timeout`` seconds is answered with the timeout response, its
session is forgotten and a ``close`` MO tells the application the session
ended.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from twisted.web.server import NOT_DONE_YET, Request

from junebug.messages import (
    SESSION_CLOSE,
    SESSION_NEW,
    SESSION_RESUME,
    UserMessage,
    ack,
    nack,
    user_message,
)
from junebug.stores import keys
from junebug.transports.dmark.config import DmarkConfig
from junebug.transports.httprpc import (
    ChannelWebServer,
    HeldRequest,
    Response,
    describe_request,
    error_response,
    json_response,
    request_args,
)
from junebug.transports.interface import TransportContext

__all__ = ["DmarkConfig", "DmarkTransport"]

EXPECTED_FIELDS: Final = frozenset(
    {
        "transactionId",
        "msisdn",
        "ussdServiceCode",
        "transactionTime",
        "ussdRequestString",
        "creationTime",
        "response",
    }
)
MISSING_REQUEST_REASON: Final = "Could not find original request."
PROVIDER: Final = "dmark"


def fix_service_code(code: str) -> str:
    """``*code#`` unless the code already starts with ``*`` or ends with ``#``."""
    if code.startswith("*") or code.endswith("#"):
        return code
    return f"*{code}#"


def closes_session(message: UserMessage) -> bool:
    return (
        message.get("session_event") == SESSION_CLOSE
        or message.get("continue_session") is False
    )


class DmarkTransport:
    """Serves Dmark's USSD requests and answers them with the replies."""

    CONFIG_CLASS: ClassVar[type[Any]] = DmarkConfig
    TRANSPORT_TYPE: ClassVar[str] = "ussd"
    #: Longest ``stop()`` waits for MO and status publishing to finish.
    STOP_TIMEOUT: ClassVar[float] = 10.0

    def __init__(self, context: TransportContext, config: DmarkConfig) -> None:
        self._context = context
        self._config = config
        self._log = context.log
        self._statuses = context.statuses
        self._tasks = context.tasks
        self._server = ChannelWebServer(
            reactor=context.reactor,
            config=config,
            channel_id=context.channel_id,
            log=context.log,
            statuses=self._statuses,
            routes={config.path: self._render},
            on_timeout=self._timed_out,
        )

    # -- what the channel, plugins and tests may look at ----------------------

    @property
    def config(self) -> DmarkConfig:
        return self._config

    @property
    def port(self) -> int | None:
        """The bound TCP port (the real one for ``web_port: 0``), or None."""
        return self._server.port

    @property
    def server(self) -> ChannelWebServer:
        return self._server

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()
        if not await self._tasks.wait(self.STOP_TIMEOUT):
            self._log.warn(
                "Dmark channel {channel_id}: gave up waiting for messages to be "
                "published",
                channel_id=self._context.channel_id,
            )

    # -- inbound -------------------------------------------------------------

    def _report(self, *args: Any, **kwargs: Any) -> None:
        self._statuses.report(*args, **kwargs)

    def _render(self, request: Request) -> bytes | int:
        values, encoding_errors = request_args(request)
        if encoding_errors:
            described = describe_request(request)
            self._report(
                "request",
                "down",
                "invalid_encoding",
                "Invalid encoding",
                details={"request": described, **encoding_errors},
            )
            return self._server.answer(
                request, json_response(400, {"invalid_request": described})
            )
        errors: dict[str, list[str]] = {}
        if self._config.validation_mode == "strict":
            unexpected = sorted(set(values) - EXPECTED_FIELDS)
            if unexpected:
                errors["unexpected_parameter"] = unexpected
        missing = sorted(EXPECTED_FIELDS - set(values))
        if missing:
            errors["missing_parameter"] = missing
        if errors:
            self._log.info(
                "Dmark channel {channel_id}: invalid request {errors}",
                channel_id=self._context.channel_id,
                errors=errors,
            )
            self._report(
                "request",
                "down",
                "invalid_inbound_fields",
                "Invalid inbound fields",
                details=errors,
            )
            return self._server.answer(request, json_response(400, errors))
        held = self._server.hold(request)
        self._tasks.spawn(self._receive(held, values), "publish a Dmark request")
        return NOT_DONE_YET

    async def _session_event(self, transaction_id: str) -> str:
        store = self._context.store
        key = keys.dmark_session(self._context.channel_id, transaction_id)
        ttl = self._config.ussd_session_timeout
        if await store.hgetall(key, ttl=ttl):
            return SESSION_RESUME
        await store.hset(
            key,
            {
                "transaction_id": transaction_id,
                "created_at": str(self._context.reactor.seconds()),
            },
            ttl=ttl,
        )
        return SESSION_NEW

    async def _receive(self, held: HeldRequest, values: dict[str, str]) -> None:
        transaction_id = values["transactionId"]
        held.data["transaction_id"] = transaction_id
        try:
            session_event = await self._session_event(transaction_id)
            to_addr = values["ussdServiceCode"]
            if self._config.fix_to_addr:
                to_addr = fix_service_code(to_addr)
            msg = user_message(
                message_id=held.request_id,
                to_addr=to_addr,
                from_addr=values["msisdn"],
                content=(
                    None
                    if session_event == SESSION_NEW
                    else values["ussdRequestString"]
                ),
                transport_name=self._context.channel_id,
                transport_type=self.TRANSPORT_TYPE,
                session_event=session_event,
                provider=PROVIDER,
                helper_metadata={"session_id": transaction_id},
                transport_metadata={
                    "dmark_ussd": {
                        "transaction_id": transaction_id,
                        "transaction_time": values["transactionTime"],
                        "creation_time": values["creationTime"],
                    }
                },
            )
            held.data["message"] = msg
            self._statuses.report("request", "ok", "request_parsed", "Request parsed")
            await self._statuses.flush()
            await self._context.publish_inbound(msg)
        except Exception:
            self._log.failure(
                "Dmark channel {channel_id}: could not publish request {request_id}",
                channel_id=self._context.channel_id,
                request_id=held.request_id,
            )
            self._server.finish(
                held.request_id,
                error_response(503, "The message could not be accepted"),
                report=False,
            )

    def _timed_out(self, held: HeldRequest) -> Response | None:
        """A held request got no reply in time: end its session."""
        msg = held.data.get("message")
        if msg is not None:
            self._tasks.spawn(self._end_session(msg), "end a timed-out session")
        if self._config.timeout_message is None:
            return None
        return json_response(
            200, {"responseString": self._config.timeout_message, "action": "end"}
        )

    async def _end_session(self, inbound: UserMessage) -> None:
        transaction_id = inbound["helper_metadata"]["session_id"]
        await self._forget_session(transaction_id)
        await self._context.publish_inbound(
            user_message(
                to_addr=inbound.get("to_addr"),
                from_addr=inbound.get("from_addr"),
                content=None,
                transport_name=self._context.channel_id,
                transport_type=self.TRANSPORT_TYPE,
                session_event=SESSION_CLOSE,
                provider=PROVIDER,
                helper_metadata=dict(inbound.get("helper_metadata") or {}),
                transport_metadata=dict(inbound.get("transport_metadata") or {}),
            )
        )

    async def _forget_session(self, transaction_id: str) -> None:
        try:
            await self._context.store.delete(
                keys.dmark_session(self._context.channel_id, transaction_id)
            )
        except Exception:
            self._log.failure(
                "Dmark channel {channel_id}: could not forget session {transaction_id}",
                channel_id=self._context.channel_id,
                transaction_id=transaction_id,
            )

    # -- outbound ------------------------------------------------------------

    async def handle_outbound(self, message: UserMessage) -> None:
        channel_id = self._context.channel_id
        message_id: str = message.get("message_id") or ""
        in_reply_to = message.get("in_reply_to")
        content = message.get("content")
        closes = closes_session(message)
        missing = []
        if not in_reply_to:
            missing.append("in_reply_to")
        if not content and not closes:
            missing.append("content")
        if missing:
            await self._context.publish_event(
                nack(message_id, f"Missing fields: {', '.join(missing)}", channel_id)
            )
            return
        body = {
            "responseString": "" if content is None else str(content),
            "action": "end" if closes else "request",
        }
        held = self._server.finish(str(in_reply_to), json_response(200, body))
        if held is None:
            await self._context.publish_event(
                nack(message_id, MISSING_REQUEST_REASON, channel_id)
            )
            return
        if closes and "transaction_id" in held.data:
            await self._forget_session(held.data["transaction_id"])
        await self._context.publish_event(ack(message_id, message_id, channel_id))
