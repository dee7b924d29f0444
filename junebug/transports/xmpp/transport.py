"""The ``xmpp`` channel type: one XMPP account exchanging chat messages.

This is vumi's ``XMPPTransport`` rebuilt on Twisted's own
``twisted.words.protocols.jabber`` (no wokkel).  The channel logs in as the
configured JID and keeps the stream up:

- **Connecting.**  A :class:`~junebug.reconnecting.ReconnectingClient`
  keeps one connection, with exponential back-off between attempts.  The
  stream (:mod:`~junebug.transports.xmpp.stream`) is negotiated with STARTTLS
  when the server offers it (see the ``tls`` option), SASL (SCRAM-SHA-256,
  SCRAM-SHA-1, or PLAIN: only on an encrypted stream unless
  ``allow_plain_without_tls``), resource binding and the legacy session.  An
  attempt that fails, including a refused login, counts as a failure for the
  back-off; only a fully logged-in stream resets it, so a wrong password does
  not hammer the server.
- **Status.**  Component ``xmpp``: ``connected`` (ok) once logged in,
  ``connection_lost`` (down) when a logged-in stream ends,
  ``connection_failed`` (down) when an attempt fails, ``auth_failed`` (down)
  when the server refuses the credentials.  Repeats are not re-published.
- **Keep-alive.**  Presence (with the configured ``<show/>``/``<status/>``)
  right after login and every ``presence_interval``; an XMPP ping (XEP-0199)
  to the server every ``ping_interval``, and a stream whose ping goes
  unanswered is dropped (and so re-established).  Server pings and roster
  pushes are answered; other requests get ``service-unavailable``.
  Subscription requests are accepted and mirrored, as vumi did.
- **Inbound.**  ``<message/>`` stanzas with a non-empty ``<body/>`` (not
  ``error`` or ``groupchat``) become MO messages: ``from_addr`` the sender's
  bare JID, ``to_addr`` ours, the body stripped, ``transport_type`` ``xmpp``,
  ``transport_metadata.xmpp_id`` the stanza id, no session event.
- **Outbound.**  A ``type="chat"`` message to the bare JID of ``to_addr`` (its
  id is the vumi message id), then an ``ack``.  When the stream is down the
  message waits up to ``send_timeout`` seconds for it to come back and is then
  **nacked** (``XMPP stream not connected``).  vumi logged and dropped it,
  publishing nothing.  Retrying by raising is not done: the broker redelivers
  a failed message only once before parking it, so a nack is the honest,
  visible outcome.  A message without content, or to an address that is not a
  JID, is nacked too.

An ack means the stanza was written to the server's connection; like vumi,
there is no delivery report (XEP-0184 receipts are not requested).
"""

from __future__ import annotations

import random
import re
from collections import deque
from typing import Any, ClassVar, Final

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    succeed,
)
from twisted.internet.defer import (
    TimeoutError as DeferredTimeoutError,
)
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IDelayedCall,
    IStreamClientEndpoint,
)
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error, xmlstream
from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish
from twisted.words.xish import xmlstream as xish_xmlstream

from junebug.messages import UserMessage, ack, nack, user_message
from junebug.reconnecting import ReconnectingClient
from junebug.transports.interface import TransportContext
from junebug.transports.toolkit import observe, wait_all
from junebug.transports.xmpp.config import XmppConfig
from junebug.transports.xmpp.sasl import SaslFailure
from junebug.transports.xmpp.stream import (
    NS_CLIENT,
    Authenticator,
    ClientStream,
    StreamFactory,
    describe,
)

__all__ = [
    "NOT_CONNECTED_REASON",
    "XmppConfig",
    "XmppTransport",
    "clean_text",
]

STATUS_COMPONENT: Final = "xmpp"
NOT_CONNECTED_REASON: Final = "XMPP stream not connected"
NO_CONTENT_REASON: Final = "No content to send"

NS_PING: Final = "urn:xmpp:ping"
NS_DISCO_INFO: Final = "http://jabber.org/protocol/disco#info"
NS_ROSTER: Final = "jabber:iq:roster"

#: Characters XML 1.0 cannot carry (a server would end the stream).
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

#: Longest a ping may go unanswered before the stream is dropped.
MAX_PING_TIMEOUT: Final = 30.0


def clean_text(text: str) -> str:
    """``text`` without the characters XML 1.0 does not allow."""
    return _XML_ILLEGAL.sub("", text)


class XmppTransport:
    """An XMPP client: one account, chat messages in and out."""

    CONFIG_CLASS: ClassVar[type[Any]] = XmppConfig
    TRANSPORT_TYPE: ClassVar[str] = "xmpp"
    #: Longest ``stop()`` waits for the disconnection and pending publishes.
    STOP_TIMEOUT: ClassVar[float] = 10.0

    def __init__(self, context: TransportContext, config: XmppConfig) -> None:
        self._context = context
        self._config = config
        self._log = context.log
        self._clock = context.reactor
        self._bare_jid = config.bare_jid
        self._client: ReconnectingClient | None = None
        #: The logged-in stream, or None.
        self._stream: ClientStream | None = None
        #: The stream being negotiated, or None.
        self._pending: ClientStream | None = None
        self._attempt_reported = False
        self._handshake_timer: IDelayedCall | None = None
        self._backoff = backoffPolicy(
            initialDelay=config.reconnect_delay,
            maxDelay=config.reconnect_max_delay,
            jitter=lambda: random.random() * min(1.0, config.reconnect_delay),
        )
        self._ready_waiters: list[Deferred[None]] = []
        self._ping_loop: LoopingCall | None = None
        self._presence_loop: LoopingCall | None = None
        self._statuses = context.statuses
        self._tasks = context.tasks
        self._outbox: deque[UserMessage] = deque()
        self._draining = False
        self._stopping = False
        self._stop_d: Deferred[None] | None = None
        #: Full JID the server bound for the current stream.
        self.bound_jid: str | None = None
        #: Keep-alive pings the server has answered (for monitoring and tests).
        self.pings_answered = 0

    # -- what the channel and tests may look at ------------------------------

    @property
    def config(self) -> XmppConfig:
        return self._config

    @property
    def connected(self) -> bool:
        """True while the stream is logged in."""
        return self._stream is not None

    def is_stopping(self) -> bool:
        return self._stopping

    def wait_connected(self) -> Deferred[None]:
        """Fires once the stream is logged in (at once if it is)."""
        if self._stream is not None:
            return succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._forget_waiter(d))
        self._ready_waiters.append(d)
        return d

    def _forget_waiter(self, d: Deferred[None]) -> None:
        if d in self._ready_waiters:
            self._ready_waiters.remove(d)

    # -- lifecycle -----------------------------------------------------------

    def make_endpoint(self) -> IStreamClientEndpoint:
        """The TCP endpoint of the server (tests replace this)."""
        return HostnameEndpoint(
            self._clock,
            self._config.connect_host,
            self._config.port,
            timeout=self._config.connect_timeout,
        )

    async def start(self) -> None:
        """Start connecting; returns at once, the stream comes up in the background.

        A server that is down when the channel starts is retried with back-off
        (and reported as ``connection_failed``), not a start failure.
        """
        if self._client is not None or self._stopping:
            return
        factory = StreamFactory(Authenticator(self._config), self._clock)
        factory.addBootstrap(xish_xmlstream.STREAM_CONNECTED_EVENT, self._connected)
        # A logged-in stream is a ready connection: refused logins back off.
        self._client = ReconnectingClient(
            self._clock,
            self.make_endpoint(),
            factory,
            self._backoff,
            on_connect_failed=self._connect_failed,
        )
        self._client.start()
        self._log.info(
            "XMPP channel {channel_id} connecting to {host}:{port} as {jid}",
            channel_id=self._context.channel_id,
            host=self._config.connect_host,
            port=self._config.port,
            jid=self._config.username,
        )

    async def stop(self) -> None:
        if self._stop_d is None:
            self._stop_d = Deferred.fromCoroutine(self._stop())
        await observe(self._stop_d)

    async def _stop(self) -> None:
        self._stopping = True
        try:
            self._stop_loops()
            self._cancel_handshake_timer()
            xs = self._stream
            if xs is not None and xs.transport is not None:
                try:
                    unavailable = domish.Element((NS_CLIENT, "presence"))
                    unavailable["type"] = "unavailable"
                    xs.send(unavailable)
                    xs.sendFooter()
                except Exception:
                    self._log.failure("XMPP: could not close the stream politely")
            client, self._client = self._client, None
            if client is not None and not await self._wait_all(
                [observe(Deferred.fromCoroutine(client.stop()))]
            ):
                self._log.warn(
                    "XMPP channel {channel_id}: the connection did not close; "
                    "aborting it",
                    channel_id=self._context.channel_id,
                )
                for stream in (self._stream, self._pending):
                    self._abort(stream)
            for waiter in list(self._ready_waiters):
                waiter.cancel()
            if not await self._tasks.wait(self.STOP_TIMEOUT):
                self._log.warn(
                    "XMPP channel {channel_id}: gave up waiting for messages "
                    "to be published",
                    channel_id=self._context.channel_id,
                )
        except Exception:
            self._log.failure(
                "XMPP channel {channel_id} failed to stop cleanly",
                channel_id=self._context.channel_id,
            )

    async def _wait_all(self, deferreds: list[Deferred[Any]]) -> bool:
        return await wait_all(self._clock, deferreds, self.STOP_TIMEOUT)

    @staticmethod
    def _close(xs: ClientStream) -> None:
        if xs.transport is not None:
            xs.transport.loseConnection()

    @staticmethod
    def _abort(xs: ClientStream | None) -> None:
        if xs is None or xs.transport is None:
            return
        abort = getattr(xs.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            xs.transport.loseConnection()

    # -- connection life (stream observers) ----------------------------------

    def _connect_failed(self, reason: Failure) -> None:
        if self._stopping:
            return
        self._log.info(
            "XMPP channel {channel_id}: cannot connect to {host}:{port}: {why}",
            channel_id=self._context.channel_id,
            host=self._config.connect_host,
            port=self._config.port,
            why=describe(reason),
        )
        self._set_status(
            "down", "connection_failed", f"Could not connect: {describe(reason)}"
        )

    def _connected(self, xs: ClientStream) -> None:
        if self._stopping:
            self._close(xs)
            return
        self._pending = xs
        self._attempt_reported = False
        if self._config.debug:
            self._install_debug_logging(xs)
        xs.addObserver(xmlstream.STREAM_AUTHD_EVENT, self._authenticated)
        xs.addObserver(
            xmlstream.INIT_FAILED_EVENT, lambda reason: self._init_failed(xs, reason)
        )
        xs.addObserver(
            xish_xmlstream.STREAM_ERROR_EVENT,
            lambda reason: self._stream_error(xs, reason),
        )
        xs.addObserver(
            xish_xmlstream.STREAM_END_EVENT, lambda reason: self._ended(xs, reason)
        )
        self._cancel_handshake_timer()
        self._handshake_timer = self._clock.callLater(
            self._config.connect_timeout, self._handshake_timed_out, xs
        )

    def _handshake_timed_out(self, xs: ClientStream) -> None:
        self._handshake_timer = None
        if self._pending is not xs:
            return
        self._report_attempt(
            "connection_failed",
            f"Login did not finish within {self._config.connect_timeout:g}s",
        )
        self._abort(xs)

    def _cancel_handshake_timer(self) -> None:
        timer, self._handshake_timer = self._handshake_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _authenticated(self, xs: ClientStream) -> None:
        self._cancel_handshake_timer()
        if self._pending is xs:
            self._pending = None
        if self._stopping:
            self._close(xs)
            return
        self._stream = xs
        if self._client is not None:
            self._client.ready()
        authenticator: Any = xs.authenticator
        self.bound_jid = authenticator.jid.full()
        xs.addObserver("/message", self._on_message)
        xs.addObserver("/presence", self._on_presence)
        xs.addObserver('/iq[@type="get"]', self._on_request)
        xs.addObserver('/iq[@type="set"]', self._on_request)
        self._send_presence()
        self._start_loops()
        self._log.info(
            "XMPP channel {channel_id} logged in as {jid}",
            channel_id=self._context.channel_id,
            jid=self.bound_jid,
        )
        self._set_status("ok", "connected", f"Logged in as {self.bound_jid}")
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _init_failed(self, xs: ClientStream, reason: Failure) -> None:
        self._cancel_handshake_timer()
        if reason.check(SaslFailure):
            self._log.warn(
                "XMPP channel {channel_id}: login refused for {jid}: {why}",
                channel_id=self._context.channel_id,
                jid=self._config.username,
                why=str(reason.value),
            )
            self._report_attempt("auth_failed", f"Login refused: {reason.value}")
        else:
            self._log.warn(
                "XMPP channel {channel_id}: stream negotiation failed: {why}",
                channel_id=self._context.channel_id,
                why=describe(reason),
            )
            self._report_attempt(
                "connection_failed", f"Stream negotiation failed: {describe(reason)}"
            )
        self._close(xs)

    def _stream_error(self, xs: ClientStream, reason: Failure) -> None:
        xs.error_text = describe(reason)
        self._log.warn(
            "XMPP channel {channel_id}: {why}",
            channel_id=self._context.channel_id,
            why=describe(reason),
        )
        if self._pending is xs:
            self._report_attempt("connection_failed", describe(reason))

    def _report_attempt(self, status_type: str, message: str) -> None:
        """Report why the attempt being negotiated failed (once per attempt)."""
        if self._attempt_reported or self._stopping:
            return
        self._attempt_reported = True
        self._set_status("down", status_type, message)

    def _ended(self, xs: ClientStream, reason: Failure) -> None:
        if self._pending is xs:
            # Lost before login: a failed attempt for the back-off.
            self._pending = None
            self._cancel_handshake_timer()
            self._report_attempt(
                "connection_failed",
                f"Connection closed during login: {describe(reason)}",
            )
            return
        if self._stream is not xs:
            return
        self._stream = None
        self.bound_jid = None
        self._stop_loops()
        if self._stopping:
            return
        why = xs.error_text or describe(reason)
        self._log.warn(
            "XMPP channel {channel_id}: connection lost: {why}",
            channel_id=self._context.channel_id,
            why=why,
        )
        self._set_status("down", "connection_lost", f"Connection lost: {why}")

    def _install_debug_logging(self, xs: ClientStream) -> None:
        log = self._log

        def incoming(data: bytes) -> None:
            log.debug("XMPP in: {data}", data=data.decode("utf-8", "replace"))

        def outgoing(data: bytes) -> None:
            text = data.decode("utf-8", "replace")
            if "<auth" in text or "<response" in text:
                text = "<!-- SASL data not logged -->"
            log.debug("XMPP out: {data}", data=text)

        xs.rawDataInFn = incoming
        xs.rawDataOutFn = outgoing

    # -- keep-alive ------------------------------------------------------------

    def _start_loops(self) -> None:
        self._stop_loops()
        if self._config.ping_interval > 0:
            self._ping_loop = LoopingCall(self._send_ping)
            self._ping_loop.clock = self._clock
            self._ping_loop.start(self._config.ping_interval, now=False)
        if self._config.presence_interval > 0:
            self._presence_loop = LoopingCall(self._send_presence)
            self._presence_loop.clock = self._clock
            self._presence_loop.start(self._config.presence_interval, now=False)

    def _stop_loops(self) -> None:
        for loop in (self._ping_loop, self._presence_loop):
            if loop is not None and loop.running:
                loop.stop()
        self._ping_loop = self._presence_loop = None

    def _presence(self, presence_type: str | None = None) -> domish.Element:
        element = domish.Element((NS_CLIENT, "presence"))
        if presence_type is not None:
            element["type"] = presence_type
        return element

    def _send_presence(self) -> None:
        xs = self._stream
        if xs is None:
            return
        presence = self._presence()
        if self._config.status:
            presence.addElement("show", content=self._config.status)
        if self._config.status_message:
            presence.addElement(
                "status", content=clean_text(self._config.status_message)
            )
        xs.send(presence)

    def _send_ping(self) -> None:
        xs = self._stream
        if xs is None:
            return
        iq = xmlstream.IQ(xs, "get")
        iq.addElement((NS_PING, "ping"))
        iq.timeout = min(self._config.ping_interval, MAX_PING_TIMEOUT)  # type: ignore[assignment]
        d = iq.send(to=self._config.jid.host)

        def failed(reason: Failure) -> None:
            if reason.check(xmlstream.TimeoutError) and self._stream is xs:
                self._log.warn(
                    "XMPP channel {channel_id}: ping unanswered; dropping the "
                    "connection",
                    channel_id=self._context.channel_id,
                )
                self._abort(xs)
            elif reason.check(error.StanzaError):
                # An error reply (e.g. service-unavailable) still shows the
                # server is alive.
                self.pings_answered += 1
            # A lost connection is handled by the stream observers.

        def answered(_: object) -> None:
            self.pings_answered += 1

        d.addCallbacks(answered, failed)

    # -- stanzas from the server ---------------------------------------------

    def _on_request(self, iq: domish.Element) -> None:
        if getattr(iq, "handled", False):
            return
        iq.handled = True  # type: ignore[attr-defined]
        xs = self._stream
        if xs is None:
            return
        child = iq.firstChildElement()
        uri = getattr(child, "uri", None)
        name = getattr(child, "name", None)
        kind = iq.getAttribute("type")
        if kind == "get" and (uri, name) == (NS_PING, "ping"):
            xs.send(xmlstream.toResponse(iq, "result"))
        elif kind == "get" and (uri, name) == (NS_DISCO_INFO, "query"):
            response = xmlstream.toResponse(iq, "result")
            query = response.addElement((NS_DISCO_INFO, "query"))
            identity = query.addElement("identity")
            identity["category"] = "client"
            identity["type"] = "bot"
            identity["name"] = "Junebug"
            for feature in (NS_DISCO_INFO, NS_PING):
                query.addElement("feature")["var"] = feature
            xs.send(response)
        elif kind == "set" and (uri, name) == (NS_ROSTER, "query"):
            sender = iq.getAttribute("from")
            if sender is None or _bare(sender) == self._bare_jid:
                xs.send(xmlstream.toResponse(iq, "result"))
        else:
            xs.send(error.StanzaError("service-unavailable").toResponse(iq))

    def _on_presence(self, presence: domish.Element) -> None:
        xs = self._stream
        sender = presence.getAttribute("from")
        kind = presence.getAttribute("type")
        if xs is None or sender is None or kind not in ("subscribe", "unsubscribe"):
            return
        try:
            bare = JID(sender).userhost()
        except InvalidFormat:
            return
        answers = (
            ("subscribed", "subscribe")
            if kind == "subscribe"
            else ("unsubscribed", "unsubscribe")
        )
        for answer in answers:
            reply = self._presence(answer)
            reply["to"] = bare
            xs.send(reply)

    def _on_message(self, message: domish.Element) -> None:
        kind = message.getAttribute("type", "normal")
        sender = message.getAttribute("from")
        if kind == "error":
            condition = None
            err = getattr(message, "error", None)
            if err is not None and err.firstChildElement() is not None:
                condition = err.firstChildElement().name
            self._log.warn(
                "XMPP channel {channel_id}: message {id} to {sender} bounced: "
                "{condition}",
                channel_id=self._context.channel_id,
                id=message.getAttribute("id"),
                sender=sender,
                condition=condition,
            )
            return
        if kind == "groupchat" or sender is None:
            return
        body = getattr(message, "body", None)
        if body is None:
            return
        content = str(body).strip()
        if not content:
            return
        try:
            from_addr = JID(sender).userhost()
        except InvalidFormat:
            self._log.warn("XMPP: message from an invalid JID {jid}", jid=sender)
            return
        msg = user_message(
            to_addr=self._bare_jid,
            from_addr=from_addr,
            transport_name=self._context.channel_id,
            content=content,
            transport_type=self.TRANSPORT_TYPE,
            transport_metadata={"xmpp_id": message.getAttribute("id")},
        )
        self._outbox.append(msg)
        if not self._draining:
            self._draining = True
            self._tasks.spawn(self._drain(), "publish XMPP MO messages")

    async def _drain(self) -> None:
        try:
            while self._outbox:
                msg = self._outbox.popleft()
                try:
                    await self._context.publish_inbound(msg)
                except Exception:
                    self._log.failure(
                        "XMPP channel {channel_id}: could not publish an inbound "
                        "message from {address}",
                        channel_id=self._context.channel_id,
                        address=msg.get("from_addr"),
                    )
        finally:
            self._draining = False

    # -- status ----------------------------------------------------------------

    def _set_status(self, level: str, status_type: str, message: str) -> None:
        self._statuses.report(
            STATUS_COMPONENT,
            level,
            status_type,
            message,
            details={
                "jid": self._config.username,
                "host": self._config.connect_host,
                "port": self._config.port,
            },
        )

    # -- outbound ----------------------------------------------------------------

    async def _ready_stream(self) -> ClientStream | None:
        """The logged-in stream, waiting up to ``send_timeout`` for one."""
        if self._stream is not None or self._stopping:
            return self._stream
        timeout = self._config.send_timeout
        if timeout <= 0:
            return None
        waiter = self.wait_connected()
        waiter.addTimeout(timeout, self._clock)
        try:
            await waiter
        except (DeferredTimeoutError, CancelledError):
            return None
        return self._stream

    async def handle_outbound(self, message: UserMessage) -> None:
        message_id: str = message.get("message_id") or ""
        channel_id = self._context.channel_id
        to_addr = message.get("to_addr")
        content = message.get("content")
        try:
            if not isinstance(to_addr, str) or not to_addr.strip():
                raise InvalidFormat("empty")
            recipient = JID(to_addr.strip()).userhost()
        except InvalidFormat:
            await self._context.publish_event(
                nack(message_id, f"Invalid to_addr: {to_addr!r}", channel_id)
            )
            return
        if content is None or content == "":
            await self._context.publish_event(
                nack(message_id, NO_CONTENT_REASON, channel_id)
            )
            return
        xs = await self._ready_stream()
        if xs is None or xs.transport is None:
            await self._context.publish_event(
                nack(message_id, NOT_CONNECTED_REASON, channel_id)
            )
            return
        stanza = domish.Element((NS_CLIENT, "message"))
        stanza["to"] = recipient
        stanza["type"] = "chat"
        if message_id:
            stanza["id"] = message_id
        else:
            stanza.addUniqueId()
        stanza.addElement("body", content=clean_text(str(content)))
        xs.send(stanza)
        await self._context.publish_event(ack(message_id, stanza["id"], channel_id))


def _bare(address: str) -> str | None:
    try:
        bare: str = JID(address).userhost()
    except InvalidFormat:
        return None
    return bare
