"""Deliver a channel's (or destination's) inbound messages and events onwards.

This is the original's MessageForwardingWorker: MO messages are stored (so they
can be replied to) and then POSTed to ``mo_url`` and/or copied to
``<amqp_queue>.inbound``; events are stored against their outbound message and
POSTed to that message's ``event_url`` and/or copied to ``<amqp_queue>.event``.
Unlike the original, MO messages that close a session are forwarded too.

Both URLs may be templates (:mod:`junebug.http.url_templates`), filled here
once per message, before the first attempt: a retried delivery re-posts the
same URL.  A URL without variables is posted as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs
from twisted.logger import Logger

from junebug.amqp import topology
from junebug.amqp.broker import Broker
from junebug.dialects import callbacks
from junebug.http import url_templates
from junebug.http.client import redact_url, status_phrase
from junebug.http.plain import PlainRequest
from junebug.messages import Message, api_event_type, api_event_view, api_message_view
from junebug.stored_logs import MessageRecorder
from junebug.stores.messages import MessageStore
from junebug.stores.rates import RateStore

DEFAULT_HTTP_TIMEOUT = 10.0


class HttpResultLike(Protocol):
    ok: bool
    code: int | None
    body: str
    error: str | None


class JsonPoster(Protocol):
    """The part of :class:`junebug.http.client.HttpClient` forwarding needs."""

    async def post_json(
        self,
        url: str,
        body: Any,
        *,
        token: str | None = None,
        timeout: float = ...,
        breaker_key: str | None = ...,
        about: Mapping[str, str] | None = ...,
    ) -> Any: ...

    async def send_request(
        self,
        url: str,
        request: PlainRequest,
        *,
        timeout: float = ...,
        breaker_key: str | None = ...,
    ) -> Any: ...


def _event_fields(event: Message) -> dict[str, Any]:
    fields = {
        "event_id": event.get("event_id"),
        "event_type": event.get("event_type"),
    }
    for key in ("sent_message_id", "nack_reason", "delivery_status"):
        if event.get(key) is not None:
            fields[key] = event.get(key)
    return fields


def _breaker(template: str, url: str) -> dict[str, Any]:
    """A filled template's deliveries share one breaker, the template's."""
    return {} if url == template else {"breaker_key": template}


@attrs.define
class Forwarder:
    """Forwards MO and events for one owner (a channel or a destination)."""

    owner_id: str
    broker: Broker
    messages: MessageStore
    rates: RateStore
    http: JsonPoster
    log: Logger
    mo_url: str | None = None
    mo_url_auth_token: str | None = None
    amqp_queue: str | None = None
    mo_url_timeout: float = DEFAULT_HTTP_TIMEOUT
    #: How ``mo_url`` receives MO: Junebug's JSON, or a dialect's request
    #: (:data:`junebug.dialects.callbacks.MO_FORMATS`).
    mo_format: str = "junebug"
    #: Posts MO messages, if they need other retry bounds than events.
    mo_http: JsonPoster | None = None
    event_url_timeout: float = DEFAULT_HTTP_TIMEOUT
    #: The ``channel_id`` shown in API views; the destination id for routers.
    view_id: str | None = None
    #: Where an event goes when its message has no stored ``event_url`` (the
    #: message API's ``default_event_url``), with its own token.
    default_event_url: str | None = None
    default_event_auth_token: str | None = None
    #: Log a warning for an event that has nowhere to go (channels stay quiet:
    #: a message sent without ``event_url`` wants no events).
    warn_without_event_url: bool = False
    #: Records deliveries in each message's log (None: not recorded).
    record: MessageRecorder | None = None

    async def handle_inbound(self, message: Message) -> None:
        """Store an MO message, then deliver it to ``mo_url`` and ``amqp_queue``."""
        await self.messages.store_inbound(self.owner_id, message)
        if self.mo_url and self.mo_format != "junebug":
            channel_id = message.get("transport_name") or self.owner_id
            url, request = callbacks.mo_request(
                self.mo_format, self.mo_url, message, channel_id
            )
            result = await (self.mo_http or self.http).send_request(
                url,
                request,
                timeout=self.mo_url_timeout,
                **_breaker(self.mo_url, url),
            )
            self._report("message", url, result, message.get("message_id"))
        elif self.mo_url:
            view = api_message_view(message)
            url = self.mo_url
            if url_templates.has_variables(url):
                channel_id = message.get("transport_name") or self.owner_id
                url = url_templates.render(
                    url, url_templates.mo_values(message, channel_id)
                )
            result = await (self.mo_http or self.http).post_json(
                url,
                view,
                token=self.mo_url_auth_token,
                timeout=self.mo_url_timeout,
                about=self._about(message.get("message_id")),
                **_breaker(self.mo_url, url),
            )
            self._report("message", url, result, message.get("message_id"))
            self._record_post("message", url, result, message.get("message_id"))
        if self.amqp_queue:
            await self.broker.publish(topology.inbound(self.amqp_queue), message)
        await self.rates.increment(self.owner_id, "inbound")

    async def handle_event(self, event: Message) -> None:
        """Store an event, then deliver it to its message's ``event_url``."""
        message_id = event.get("user_message_id")
        if not message_id:
            self.log.warn(
                "Cannot store event, missing user_message_id: {event_id}",
                event_id=event.get("event_id"),
                channel_id=self.owner_id,
            )
        else:
            if self.record is not None:
                self.record(
                    message_id,
                    f"{event.get('event_type')} event received",
                    _event_fields(event),
                )
            record = await self.messages.store_event_and_load_outbound(
                self.owner_id, event
            )
            await self._post_event(message_id, event, record)
        if self.amqp_queue:
            await self.broker.publish(topology.event(self.amqp_queue), event)
        event_type = api_event_type(event)
        if event_type is not None:
            await self.rates.increment(self.owner_id, event_type)

    async def _post_event(
        self, message_id: str, event: Message, record: dict[str, Any] | None
    ) -> None:
        record = record or {}
        if record.get("dialect"):
            await self._post_dialect_event(message_id, event, record)
            return
        event_url = record.get("event_url")
        token = record.get("event_auth_token")
        if not event_url:
            event_url = self.default_event_url
            token = self.default_event_auth_token
        if not event_url:
            if self.warn_without_event_url:
                self.log.warn(
                    "No event URL for message {message_id}: event {event_id} "
                    "not delivered",
                    message_id=message_id,
                    event_id=event.get("event_id"),
                    channel_id=self.owner_id,
                )
            return
        if api_event_type(event) is None:
            self.log.info(
                "Discarding unrecognised event {event_id}",
                event_id=event.get("event_id"),
                channel_id=self.owner_id,
            )
            return
        channel_id = self.view_id or self.owner_id
        view = api_event_view(event, channel_id)
        url = event_url
        if url_templates.has_variables(url):
            values = url_templates.event_values(event, record, channel_id)
            url = url_templates.render(url, values)
        result = await self.http.post_json(
            url,
            view,
            token=token,
            timeout=self.event_url_timeout,
            about=self._about(message_id),
            **_breaker(event_url, url),
        )
        self._report("event", url, result, message_id)
        self._record_post(f"{view['event_type']} event", url, result, message_id)

    def _about(self, message_id: Any) -> dict[str, str]:
        """Log fields putting a delivery's retries in this owner's logs."""
        about = {"channel_id": self.owner_id}
        if isinstance(message_id, str):
            about["message_id"] = message_id
        return about

    def _record_post(
        self, what: str, url: str, result: HttpResultLike, message_id: Any
    ) -> None:
        if self.record is None or not isinstance(message_id, str):
            return
        outcome = f"HTTP {result.code}" if result.code is not None else result.error
        self.record(
            message_id,
            f"Posted {what} to {redact_url(url)}: {outcome}",
            {"url": redact_url(url), "ok": result.ok, "code": result.code},
        )

    async def _post_dialect_event(
        self, message_id: str, event: Message, record: dict[str, Any]
    ) -> None:
        """A dialect's delivery report, if its message asked for this one."""
        if callbacks.needs_smsc_id(event, record):
            for stored in await self.messages.load_events(self.owner_id, message_id):
                if stored.get("event_type") == "ack" and stored.get("sent_message_id"):
                    record = {**record, "smsc_id": stored["sent_message_id"]}
        made = callbacks.dlr_request(event, record, self.view_id or self.owner_id)
        if made is None:
            return
        url, request = made
        result = await self.http.send_request(
            url,
            request,
            timeout=self.event_url_timeout,
            **_breaker(record["dlr_url"], url),
        )
        self._report("event", url, result, message_id)

    def _report(
        self, what: str, url: str, result: HttpResultLike, message_id: Any
    ) -> None:
        if result.ok:
            return
        if result.code is not None:
            self.log.error(
                "Error sending {what} {message_id} to {url}: HTTP {code} {phrase}",
                what=what,
                message_id=message_id,
                url=redact_url(url),
                code=result.code,
                phrase=status_phrase(result.code),
                channel_id=self.owner_id,
            )
        else:
            self.log.error(
                "Post of {what} {message_id} to {url} failed: {error}",
                what=what,
                message_id=message_id,
                url=redact_url(url),
                error=result.error,
                channel_id=self.owner_id,
            )

    async def relay_outbound(self, message: Message, channel_id: str) -> None:
        """Republish an MT message from ``<amqp_queue>.outbound`` to the channel."""
        await self.broker.publish(topology.outbound(channel_id), message)
