"""The XMPP client stream of the ``xmpp`` channel: how one connection logs in.

:class:`StreamFactory` builds a :class:`ClientStream` per connection, whose
:class:`Authenticator` negotiates, in order: the stream version, STARTTLS (as
the ``tls`` option says: :class:`StartTls`), SASL (see
:mod:`~junebug.transports.xmpp.sasl`; PLAIN only over an encrypted stream
unless ``allow_plain_without_tls``), resource binding and the legacy session.
What the channel does with a logged-in stream is
:mod:`~junebug.transports.xmpp.transport`'s business.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.ssl import Certificate, CertificateOptions, optionsForClientTLS
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import client, error, xmlstream
from twisted.words.xish import domish
from twisted.words.xish import xmlstream as xish_xmlstream
from typing_extensions import override

from junebug.transports.xmpp.config import XmppConfig
from junebug.transports.xmpp.sasl import SaslInitializer, mark_encrypted

__all__ = [
    "NS_CLIENT",
    "Authenticator",
    "ClientStream",
    "StartTls",
    "StreamFactory",
    "TlsUnavailable",
    "describe",
    "tls_options",
]

NS_CLIENT = "jabber:client"


def describe(reason: Failure | BaseException | None) -> str:
    """A one-line description of why an attempt or a stream ended."""
    exc = reason.value if isinstance(reason, Failure) else reason
    if exc is None:
        return "unknown reason"
    if isinstance(exc, error.StreamError):
        return f"stream error: {exc.condition}" + (f" ({exc.text})" if exc.text else "")
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ClientStream(xmlstream.XmlStream):
    """An XMPP client stream whose IQ timeouts use the channel's clock."""

    #: Set by :class:`StreamFactory` on each stream it builds.
    clock: IReactorTime
    #: The last stream error the server sent, described (for status messages).
    error_text: str | None = None

    @override
    def _callLater(self, *args: Any, **kwargs: Any) -> IDelayedCall:
        delayed: IDelayedCall = self.clock.callLater(*args, **kwargs)
        return delayed


class StreamFactory(xish_xmlstream.XmlStreamFactoryMixin, protocol.ClientFactory):
    """Builds one :class:`ClientStream` per connection."""

    protocol = ClientStream
    noisy = False

    def __init__(self, authenticator: Authenticator, clock: IReactorTime) -> None:
        xish_xmlstream.XmlStreamFactoryMixin.__init__(self, authenticator)
        self.clock = clock

    @override
    def buildProtocol(self, addr: Any) -> ClientStream:
        xs: ClientStream = xish_xmlstream.XmlStreamFactoryMixin.buildProtocol(
            self, addr
        )
        xs.clock = self.clock
        return xs


class TlsUnavailable(xmlstream.TLSError):
    """``tls: required``, but the server does not offer STARTTLS."""

    def __str__(self) -> str:
        return "the server does not offer STARTTLS and tls is 'required'"


class StartTls(xmlstream.TLSInitiatingInitializer):
    """STARTTLS as the ``tls`` option says; a clear error when it is missing."""

    @override
    def initialize(self) -> Any:
        if self.feature not in self.xmlstream.features and self.required:
            raise TlsUnavailable()
        return super().initialize()

    @override
    def onProceed(self, obj: domish.Element) -> None:
        # Before the stream restarts: SASL runs on the encrypted stream.
        mark_encrypted(self.xmlstream)
        super().onProceed(obj)


def tls_options(config: XmppConfig) -> Any:
    """The client TLS configuration used for STARTTLS (certificate checked
    against ``tls_ca_certificate`` or the system's roots, for the JID's
    domain), or an unchecking one when ``tls_verify`` is false."""
    if not config.tls_verify:
        return CertificateOptions()
    trust: Any = None
    if config.tls_ca_certificate:
        with open(config.tls_ca_certificate, "rb") as handle:
            trust = Certificate.loadPEM(handle.read())
    return optionsForClientTLS(config.jid.host, trustRoot=trust)


class Authenticator(xmlstream.ConnectAuthenticator):
    """Negotiates TLS (per the ``tls`` option), SASL, binding and session."""

    namespace = NS_CLIENT

    def __init__(self, config: XmppConfig) -> None:
        jid = config.jid
        xmlstream.ConnectAuthenticator.__init__(self, jid.host)
        self.config = config
        #: Read by the SASL and bind initializers; binding replaces it with
        #: the full JID the server assigned.
        self.jid = jid
        self.password = config.password
        self._tls_options = None if config.tls == "off" else tls_options(config)

    @override
    def associateWithStream(self, xs: xmlstream.XmlStream) -> None:
        xmlstream.ConnectAuthenticator.associateWithStream(self, xs)
        # Each connection starts from the configured JID (and resource).
        self.jid = self.config.jid
        tls = StartTls(
            xs,
            required=self.config.tls == "required",
            configurationForTLS=self._tls_options,
        )
        tls.wanted = self.config.tls != "off"
        xs.initializers = [
            client.CheckVersionInitializer(xs),
            tls,
            SaslInitializer(
                xs,
                required=True,
                allow_plain_without_tls=self.config.allow_plain_without_tls,
            ),
            client.BindInitializer(xs, required=True),
            client.SessionInitializer(xs, required=False),
        ]
