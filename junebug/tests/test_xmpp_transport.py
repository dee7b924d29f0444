"""Unit tests for the ``xmpp`` transport: config, SASL, and the stream logic.

The server side is scripted: a fake endpoint connects the transport's XML
stream to a :class:`StringTransport`, the test feeds it the server's XML and
reads what the client wrote.  Time is a :class:`MemoryReactorClock`.  The
real-server tests are in ``integration/test_xmpp.py``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from twisted.internet import error as net_error
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.sasl import SASLNoAcceptableMechanism
from twisted.words.protocols.jabber.sasl_mechanisms import Plain
from twisted.words.protocols.jabber.xmlstream import Authenticator, XmlStream

from junebug.converter import structure
from junebug.errors import ConfigError
from junebug.messages import Message, user_message
from junebug.testing.context import RecordingContext
from junebug.transports.registry import TransportRegistry
from junebug.transports.xmpp.sasl import (
    Scram,
    ScramError,
    choose_mechanism,
    is_encrypted,
    mark_encrypted,
    saslprep,
)
from junebug.transports.xmpp.transport import (
    NO_CONTENT_REASON,
    NOT_CONNECTED_REASON,
    XmppConfig,
    XmppTransport,
    clean_text,
)


def mt(to_addr: Any, content: Any = "hello", **kw: Any) -> Message:
    return user_message(
        to_addr=to_addr,
        from_addr="bot@example.org",
        transport_name="chan-1",
        content=content,
        **kw,
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


BASE_CONFIG = {
    "username": "bot@example.org/jb",
    "password": "secret",
    "host": "xmpp.example.org",
    "port": 5222,
    "status": "chat",
    "status_message": "Here to help",
}


# ---------------------------------------------------------------------------
# config


class XmppConfigTests(SynchronousTestCase):
    def test_vumi_style_config(self) -> None:
        config = structure(
            {**BASE_CONFIG, "transport_name": "x", "publish_status": True},
            XmppConfig,
        )
        self.assertEqual(config.bare_jid, "bot@example.org")
        self.assertEqual(config.connect_host, "xmpp.example.org")
        self.assertEqual(config.ping_interval, 60.0)
        self.assertEqual(config.presence_interval, 60.0)
        self.assertEqual(config.tls, "optional")

    def test_defaults(self) -> None:
        config = structure({"username": "bot@example.org", "password": "p"}, XmppConfig)
        self.assertEqual(config.connect_host, "example.org")
        self.assertEqual(config.port, 5222)
        self.assertIsNone(config.status)
        self.assertEqual(config.status_message, "")
        self.assertFalse(config.debug)

    def test_required(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            structure({"username": "bot@example.org"}, XmppConfig)
        self.assertIn("password", str(caught.exception))

    def test_rejects(self) -> None:
        bad = [
            ({"username": "example.org"}, "user part"),
            ({"username": "a@b@c"}, "not a valid JID"),
            ({"status": "online"}, "status"),
            ({"port": 0}, "port"),
            ({"port": "5222"}, "port"),
            ({"ping_interval": -1}, "ping_interval"),
            ({"connect_timeout": 0}, "connect_timeout"),
            ({"tls": "always"}, "tls"),
            ({"reconnect_delay": 5, "reconnect_max_delay": 1}, "reconnect_max_delay"),
            ({"host": " "}, "host"),
        ]
        for change, word in bad:
            with self.assertRaises(ConfigError, msg=repr(change)) as caught:
                structure({**BASE_CONFIG, **change}, XmppConfig)
            self.assertIn(word, str(caught.exception))

    def test_registered(self) -> None:
        registry = TransportRegistry()
        self.assertIs(registry.resolve("xmpp"), XmppTransport)
        config = registry.validate("xmpp", dict(BASE_CONFIG))
        self.assertIsInstance(config, XmppConfig)


# ---------------------------------------------------------------------------
# SASL


class ScramTests(SynchronousTestCase):
    def test_sha1_rfc5802_example(self) -> None:
        scram = Scram("SCRAM-SHA-1", "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL")
        self.assertEqual(
            scram.getInitialResponse(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
        )
        final = scram.getResponse(
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
        )
        self.assertEqual(
            final,
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
            b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        )
        self.assertFalse(scram.verified)
        scram.verify_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
        self.assertTrue(scram.verified)

    def test_sha256_rfc7677_example(self) -> None:
        scram = Scram("SCRAM-SHA-256", "user", "pencil", "rOprNGfwEbeRWgbNEkqO")
        final = scram.getResponse(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        )
        self.assertEqual(
            final,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        )
        # The server-final message may also come as a last challenge.
        self.assertEqual(
            scram.getResponse(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), b""
        )
        self.assertTrue(scram.verified)

    def test_wrong_server_signature(self) -> None:
        scram = Scram("SCRAM-SHA-1", "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL")
        scram.getResponse(
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
        )
        with self.assertRaises(ScramError):
            scram.verify_final(b"v=" + base64.b64encode(b"x" * 20))
        self.assertFalse(scram.verified)

    def test_bad_server_first(self) -> None:
        for server_first in (
            b"r=someoneelse,s=QSXCR+Q6sek8bf92,i=4096",  # nonce not extended
            b"r=abc,s=QSXCR+Q6sek8bf92,i=4096",
            b"r=abcdef,i=4096",  # no salt
            b"r=abcdef,s=QSXCR+Q6sek8bf92,i=zero",
            b"e=other-error",
            b"garbage",
        ):
            scram = Scram("SCRAM-SHA-1", "user", "pencil", "abc")
            with self.assertRaises(ScramError, msg=repr(server_first)):
                scram.getResponse(server_first)

    def test_username_escaping_and_saslprep(self) -> None:
        scram = Scram("SCRAM-SHA-1", "a=b,c", "p", "n")
        self.assertEqual(scram.getInitialResponse(), b"n,,n=a=3Db=2Cc,r=n")
        self.assertEqual(saslprep("I\u00adX"), "IX")
        self.assertEqual(saslprep("a\u00a0b"), "a b")
        self.assertEqual(saslprep("\u2168"), "IX")

    def test_plain_needs_an_encrypted_stream(self) -> None:
        """PLAIN is chosen only where allowed; SCRAM is still preferred."""
        with self.assertRaises(SASLNoAcceptableMechanism) as caught:
            choose_mechanism(["PLAIN"], "u", "p", plain_allowed=False)
        self.assertIn("allow_plain_without_tls", str(caught.exception))
        chosen = choose_mechanism(
            ["PLAIN", "SCRAM-SHA-1"], "u", "p", plain_allowed=False
        )
        self.assertEqual(chosen.name, "SCRAM-SHA-1")
        stream = XmlStream(Authenticator())
        stream.makeConnection(StringTransport())
        self.assertFalse(is_encrypted(stream))
        mark_encrypted(stream)
        self.assertTrue(is_encrypted(stream))

    def test_choose_mechanism(self) -> None:
        chosen = choose_mechanism(["PLAIN", "SCRAM-SHA-1"], "u", "p")
        self.assertIsInstance(chosen, Scram)
        self.assertEqual(chosen.name, "SCRAM-SHA-1")
        chosen = choose_mechanism(["SCRAM-SHA-1", "SCRAM-SHA-256"], "u", "p")
        self.assertEqual(chosen.name, "SCRAM-SHA-256")
        plain = choose_mechanism(["PLAIN", "DIGEST-MD5"], "u", "p")
        self.assertIsInstance(plain, Plain)
        self.assertEqual(plain.getInitialResponse(), b"\x00u\x00p")
        with self.assertRaises(SASLNoAcceptableMechanism):
            choose_mechanism(["X-OAUTH2"], "u", "p")


class CleanTextTests(SynchronousTestCase):
    def test_clean(self) -> None:
        self.assertEqual(
            clean_text("a\x00b\x07c\td\ne\rf\ufffeg\U0001f600"),
            "abc\td\ne\rfg\U0001f600",
        )


# ---------------------------------------------------------------------------
# a scripted server


STREAM_HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' id='s{n}' "
    "from='example.org' version='1.0'>"
)
FEATURES = "<stream:features>{}</stream:features>"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"


def mechanisms(*names: str) -> str:
    inner = "".join(f"<mechanism>{n}</mechanism>" for n in names)
    return f"<mechanisms xmlns='{SASL_NS}'>{inner}</mechanisms>"


BIND = "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
STARTTLS = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"


class FakeEndpoint:
    """Connects each attempt to a new StringTransport, or fails it."""

    def __init__(self) -> None:
        self.attempts = 0
        self.refuse = False
        self.connections: list[tuple[Any, StringTransport]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        self.attempts += 1
        if self.refuse:
            return fail(net_error.ConnectionRefusedError("refused"))
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        self.connections.append((proto, transport))
        return succeed(proto)

    @property
    def transport(self) -> StringTransport:
        return self.connections[-1][1]

    @property
    def proto(self) -> Any:
        return self.connections[-1][0]

    def feed(self, xml: str) -> None:
        self.proto.dataReceived(xml.encode("utf-8"))

    def written(self) -> str:
        data = self.transport.value().decode("utf-8")
        self.transport.clear()
        return data

    def lose(self, reason: Any = None) -> None:
        proto, transport = self.connections[-1]
        transport.disconnecting = True
        proto.connectionLost(
            Failure(reason or net_error.ConnectionRefusedError("gone"))
        )


class Harness:
    def __init__(self, test: SynchronousTestCase, **config: Any) -> None:
        self.test = test
        self.clock = MemoryReactorClock()
        self.ctx = RecordingContext(self.clock)
        self.endpoint = FakeEndpoint()
        self.config = structure(
            {
                **BASE_CONFIG,
                "tls": "off",
                # The fake server below offers PLAIN on a plain-text stream.
                "allow_plain_without_tls": True,
                "reconnect_delay": 1,
                **config,
            },
            XmppConfig,
        )
        self.transport = XmppTransport(self.ctx.context, self.config)
        self.transport.make_endpoint = lambda: self.endpoint  # type: ignore[method-assign,assignment,return-value]
        self.streams = 0

    def run(self, coro: Any) -> Any:
        return self.test.successResultOf(Deferred.fromCoroutine(coro))

    def start(self) -> None:
        self.run(self.transport.start())

    def server_header(self) -> None:
        self.streams += 1
        self.endpoint.feed(STREAM_HEADER.format(n=self.streams))

    def login(self, mechanism: str = "PLAIN", resource: str = "jb") -> None:
        """Answer the handshake up to a bound resource."""
        opening = self.endpoint.written()
        self.test.assertIn("<stream:stream", opening)
        self.test.assertIn("to='example.org'", opening)
        self.server_header()
        self.endpoint.feed(FEATURES.format(mechanisms(mechanism)))
        auth = self.endpoint.written()
        self.test.assertIn(f"mechanism='{mechanism}'", auth)
        self.endpoint.feed(f"<success xmlns='{SASL_NS}'/>")
        self.test.assertIn("<stream:stream", self.endpoint.written())
        self.server_header()
        self.endpoint.feed(FEATURES.format(BIND))
        bind = self.endpoint.written()
        iq_id = re.search(r"id='([^']+)'", bind)
        assert iq_id is not None
        self.test.assertIn(f"<resource>{resource}</resource>", bind)
        self.endpoint.feed(
            f"<iq type='result' id='{iq_id.group(1)}'>"
            "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            f"<jid>bot@example.org/{resource}</jid></bind></iq>"
        )

    def connect(self) -> None:
        self.start()
        self.login()
        self.test.assertTrue(self.transport.connected)

    def outbound(self, message: Message) -> Deferred[None]:
        return Deferred.fromCoroutine(self.transport.handle_outbound(message))


class XmppTransportUnitTests(SynchronousTestCase):
    def test_login_presence_and_status(self) -> None:
        h = Harness(self)
        h.start()
        self.assertEqual(h.endpoint.attempts, 1)
        self.assertFalse(h.transport.connected)
        h.login()
        self.assertTrue(h.transport.connected)
        self.assertEqual(h.transport.bound_jid, "bot@example.org/jb")
        presence = h.endpoint.written()
        self.assertIn("<presence>", presence)
        self.assertIn("<show>chat</show>", presence)
        self.assertIn("<status>Here to help</status>", presence)
        [status] = h.ctx.statuses
        self.assertEqual(status["component"], "xmpp")
        self.assertEqual((status["status"], status["type"]), ("ok", "connected"))
        self.assertEqual(status["transport_name"], "chan-1")
        self.assertEqual(status["details"]["jid"], "bot@example.org/jb")

    def test_scram_login(self) -> None:
        h = Harness(self, password="pencil", username="user@example.org")
        h.start()
        h.endpoint.written()
        h.server_header()
        h.endpoint.feed(FEATURES.format(mechanisms("PLAIN", "SCRAM-SHA-1")))
        auth = h.endpoint.written()
        self.assertIn("mechanism='SCRAM-SHA-1'", auth)
        client_first = base64.b64decode(re.sub(r"<[^>]+>", "", auth))
        self.assertTrue(client_first.startswith(b"n,,n=user,r="))
        nonce = client_first.split(b"r=")[1]
        h.endpoint.feed(
            f"<challenge xmlns='{SASL_NS}'>"
            + b64(b"r=" + nonce + b"srv,s=QSXCR+Q6sek8bf92,i=4096")
            + "</challenge>"
        )
        response = h.endpoint.written()
        self.assertIn("<response", response)
        # A success without the server's proof is refused.
        h.endpoint.feed(f"<success xmlns='{SASL_NS}'/>")
        self.assertFalse(h.transport.connected)
        self.assertEqual(h.ctx.status_types(), [("xmpp", "down", "connection_failed")])
        self.assertIn("did not prove", h.ctx.statuses[0]["message"])
        self.assertTrue(h.endpoint.transport.disconnecting)

    def test_auth_failed_backs_off(self) -> None:
        h = Harness(self, reconnect_delay=1, reconnect_max_delay=60)
        h.start()
        for attempt in range(1, 4):
            h.endpoint.written()
            h.server_header()
            h.endpoint.feed(FEATURES.format(mechanisms("PLAIN")))
            h.endpoint.written()
            h.endpoint.feed(
                f"<failure xmlns='{SASL_NS}'><not-authorized/>"
                "<text>Unable to authorize you</text></failure>"
            )
            self.assertTrue(h.endpoint.transport.disconnecting)
            h.endpoint.lose()
            self.assertEqual(h.endpoint.attempts, attempt)
            # Back-off grows with each refused login: 1 * 1.5**n (+ < 1 jitter).
            h.clock.advance(1.5**attempt - 0.001)
            self.assertEqual(h.endpoint.attempts, attempt)
            h.clock.advance(1.0)
            self.assertEqual(h.endpoint.attempts, attempt + 1)
        self.assertEqual(h.ctx.status_types(), [("xmpp", "down", "auth_failed")])
        self.assertEqual(
            h.ctx.statuses[0]["message"],
            "Login refused: not-authorized: Unable to authorize you",
        )
        # A successful login resets the back-off and reports connected.
        h.login()
        self.assertEqual(h.ctx.status_types()[-1], ("xmpp", "ok", "connected"))
        h.endpoint.lose()
        self.assertEqual(h.ctx.status_types()[-1], ("xmpp", "down", "connection_lost"))
        attempts = h.endpoint.attempts
        h.clock.advance(1.0 + 1.0)
        self.assertEqual(h.endpoint.attempts, attempts + 1)

    def test_connection_refused(self) -> None:
        h = Harness(self)
        h.endpoint.refuse = True
        h.start()
        h.clock.advance(2.6)  # 1 * 1.5 (+ < 1 jitter)
        self.assertEqual(h.endpoint.attempts, 2)
        h.clock.advance(3.3)  # 1 * 1.5**2 (+ < 1 jitter)
        self.assertEqual(h.endpoint.attempts, 3)
        self.assertEqual(h.ctx.status_types(), [("xmpp", "down", "connection_failed")])
        self.assertIn("refused", h.ctx.statuses[0]["message"])
        h.endpoint.refuse = False
        h.clock.advance(10)
        h.login()
        self.assertEqual(h.ctx.status_types()[-1], ("xmpp", "ok", "connected"))

    def test_tls_required_but_not_offered(self) -> None:
        h = Harness(self, tls="required")
        h.start()
        h.endpoint.written()
        h.server_header()
        h.endpoint.feed(FEATURES.format(mechanisms("PLAIN")))
        self.assertEqual(h.ctx.status_types(), [("xmpp", "down", "connection_failed")])
        self.assertIn("STARTTLS", h.ctx.statuses[0]["message"])
        self.assertFalse(h.transport.connected)

    def test_tls_off_but_required_by_server(self) -> None:
        h = Harness(self, tls="off")
        h.start()
        h.endpoint.written()
        h.server_header()
        h.endpoint.feed(FEATURES.format(STARTTLS + mechanisms("PLAIN")))
        self.assertEqual(h.ctx.status_types(), [("xmpp", "down", "connection_failed")])
        self.assertIn("TLSRequired", h.ctx.statuses[0]["message"])

    def test_plain_refused_when_starttls_is_stripped(self) -> None:
        """tls: optional and a server (or a man in the middle) that offers no
        STARTTLS: the password is not sent with PLAIN over the clear stream."""
        h = Harness(self, tls="optional", allow_plain_without_tls=False)
        h.start()
        h.endpoint.written()
        h.server_header()
        h.endpoint.feed(FEATURES.format(mechanisms("PLAIN")))
        written = h.endpoint.written()
        self.assertNotIn("<auth", written)
        self.assertNotIn(b64(b"\x00bot\x00secret"), written)
        self.assertFalse(h.transport.connected)
        self.assertEqual(h.ctx.status_types(), [("xmpp", "down", "connection_failed")])
        self.assertIn("allow_plain_without_tls", h.ctx.statuses[0]["message"])
        self.assertTrue(h.endpoint.transport.disconnecting)

    def test_scram_used_without_tls(self) -> None:
        """SCRAM never sends the password: it is fine on a clear stream."""
        h = Harness(self, tls="off", allow_plain_without_tls=False)
        h.start()
        h.endpoint.written()
        h.server_header()
        h.endpoint.feed(FEATURES.format(mechanisms("PLAIN", "SCRAM-SHA-1")))
        self.assertIn("mechanism='SCRAM-SHA-1'", h.endpoint.written())

    def test_plain_without_tls_when_allowed(self) -> None:
        h = Harness(self, tls="optional", allow_plain_without_tls=True)
        h.start()
        h.login()
        self.assertTrue(h.transport.connected)

    def test_plain_allowed_by_default_config_is_false(self) -> None:
        config = structure(BASE_CONFIG, XmppConfig)
        self.assertFalse(config.allow_plain_without_tls)

    def test_starttls_when_offered(self) -> None:
        h = Harness(self, tls="optional")
        h.start()
        h.endpoint.written()
        h.server_header()
        h.endpoint.feed(FEATURES.format(STARTTLS + mechanisms("PLAIN")))
        self.assertIn("<starttls", h.endpoint.written())

    def test_handshake_timeout(self) -> None:
        h = Harness(self, connect_timeout=5)
        h.start()
        h.clock.advance(5)
        self.assertEqual(h.ctx.status_types(), [("xmpp", "down", "connection_failed")])
        self.assertIn("within 5s", h.ctx.statuses[0]["message"])

    def test_stream_error_during_login(self) -> None:
        h = Harness(self)
        h.start()
        h.server_header()
        h.endpoint.feed(
            "<stream:error><host-unknown "
            "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        )
        h.endpoint.lose()
        self.assertEqual(h.ctx.status_types(), [("xmpp", "down", "connection_failed")])
        self.assertIn("host-unknown", h.ctx.statuses[0]["message"])

    def test_stream_error_when_logged_in(self) -> None:
        h = Harness(self)
        h.connect()
        h.endpoint.feed(
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "</stream:error>"
        )
        self.assertTrue(h.endpoint.transport.disconnecting)
        h.endpoint.lose()
        self.assertFalse(h.transport.connected)
        self.assertEqual(h.ctx.statuses[-1]["type"], "connection_lost")
        self.assertEqual(
            h.ctx.statuses[-1]["message"], "Connection lost: stream error: conflict"
        )

    def test_inbound_chat(self) -> None:
        h = Harness(self)
        h.connect()
        h.endpoint.feed(
            "<message from='alice@example.org/phone' to='bot@example.org/jb' "
            "type='chat' id='m1'><body>  hi bot \u2603 </body>"
            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        )
        [mo] = h.ctx.inbound
        self.assertEqual(mo["from_addr"], "alice@example.org")
        self.assertEqual(mo["to_addr"], "bot@example.org")
        self.assertEqual(mo["content"], "hi bot \u2603")
        self.assertEqual(mo["transport_type"], "xmpp")
        self.assertEqual(mo["transport_name"], "chan-1")
        self.assertEqual(mo["transport_metadata"], {"xmpp_id": "m1"})
        self.assertIsNone(mo["session_event"])
        self.assertEqual(mo["message_type"], "user_message")

    def test_inbound_ignored(self) -> None:
        h = Harness(self)
        h.connect()
        for stanza in (
            "<message from='a@example.org/x' type='chat'>"
            "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message from='a@example.org/x' type='chat'><body>   </body></message>",
            "<message from='room@muc.example.org/n' type='groupchat'>"
            "<body>hi all</body></message>",
            "<message from='a@example.org' type='error' id='x'><body>b</body>"
            "<error type='cancel'><service-unavailable "
            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
            "<message type='chat'><body>from nowhere</body></message>",
        ):
            h.endpoint.feed(stanza)
        self.assertEqual(h.ctx.inbound, [])
        h.endpoint.feed("<message from='a@example.org/x'><body>normal</body></message>")
        self.assertEqual([m["content"] for m in h.ctx.inbound], ["normal"])

    def test_inbound_publish_failure_is_logged(self) -> None:
        h = Harness(self)
        h.connect()
        h.ctx.fail_inbound = True
        h.endpoint.feed("<message from='a@example.org/x'><body>lost</body></message>")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        h.ctx.fail_inbound = False
        h.endpoint.feed("<message from='a@example.org/x'><body>kept</body></message>")
        self.assertEqual([m["content"] for m in h.ctx.inbound], ["kept"])

    def test_outbound(self) -> None:
        h = Harness(self)
        h.connect()
        h.endpoint.written()
        msg = mt("alice@example.org/phone", "hi <alice> & \x00co\n")
        self.successResultOf(h.outbound(msg))
        sent = h.endpoint.written()
        self.assertEqual(
            sent,
            f"<message to='alice@example.org' type='chat' id='{msg['message_id']}'>"
            "<body>hi &lt;alice&gt; &amp; co\n</body></message>",
        )
        [event] = h.ctx.events
        self.assertEqual(event["event_type"], "ack")
        self.assertEqual(event["user_message_id"], msg["message_id"])
        self.assertEqual(event["sent_message_id"], msg["message_id"])
        self.assertEqual(event["transport_name"], "chan-1")

    def test_outbound_rejects(self) -> None:
        h = Harness(self)
        h.connect()
        h.endpoint.written()
        for message, reason in (
            (mt(None), "Invalid to_addr: None"),
            (mt(""), "Invalid to_addr: ''"),
            (mt("a@b@c"), "Invalid to_addr: 'a@b@c'"),
            (mt("alice@example.org", None), NO_CONTENT_REASON),
            (mt("alice@example.org", ""), NO_CONTENT_REASON),
        ):
            self.successResultOf(h.outbound(message))
            event = h.ctx.events[-1]
            self.assertEqual(event["event_type"], "nack")
            self.assertEqual(event["nack_reason"], reason)
        self.assertEqual(h.endpoint.written(), "")

    def test_outbound_while_disconnected_waits_then_nacks(self) -> None:
        h = Harness(self, send_timeout=5)
        h.connect()
        h.endpoint.lose()
        self.assertFalse(h.transport.connected)
        d = h.outbound(mt("alice@example.org"))
        self.assertNoResult(d)
        h.clock.advance(5)
        self.successResultOf(d)
        [event] = h.ctx.events
        self.assertEqual(event["event_type"], "nack")
        self.assertEqual(event["nack_reason"], NOT_CONNECTED_REASON)

    def test_outbound_waits_for_reconnection(self) -> None:
        h = Harness(self, send_timeout=5)
        h.connect()
        h.endpoint.lose()
        d = h.outbound(mt("alice@example.org", "queued"))
        h.clock.advance(2)  # the retry
        self.assertEqual(len(h.endpoint.connections), 2)
        h.login()
        self.successResultOf(d)
        self.assertIn("<body>queued</body>", h.endpoint.written())
        self.assertEqual(h.ctx.events[-1]["event_type"], "ack")

    def test_outbound_without_wait(self) -> None:
        h = Harness(self, send_timeout=0)
        h.start()
        self.successResultOf(h.outbound(mt("alice@example.org")))
        self.assertEqual(h.ctx.events[-1]["nack_reason"], NOT_CONNECTED_REASON)

    def test_keepalive(self) -> None:
        h = Harness(self, ping_interval=10, presence_interval=25)
        h.connect()
        h.endpoint.written()
        h.clock.advance(10)
        ping = h.endpoint.written()
        self.assertIn("<ping xmlns='urn:xmpp:ping'/>", ping)
        self.assertIn("to='example.org'", ping)
        ping_id = re.search(r"id='([^']+)'", ping)
        assert ping_id is not None
        h.endpoint.feed(
            f"<iq type='result' id='{ping_id.group(1)}' from='example.org'/>"
        )
        self.assertEqual(h.transport.pings_answered, 1)
        h.clock.advance(10)
        ping = h.endpoint.written()
        ping_id = re.search(r"id='([^']+)'", ping)
        assert ping_id is not None
        # An error reply still counts as an answer.
        h.endpoint.feed(
            f"<iq type='error' id='{ping_id.group(1)}'><error type='cancel'>"
            "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "</error></iq>"
        )
        self.assertEqual(h.transport.pings_answered, 2)
        h.clock.advance(5)  # t = 25: presence again
        self.assertIn("<show>chat</show>", h.endpoint.written())
        # An unanswered ping drops the stream.
        h.clock.advance(5)  # t = 30: ping
        self.assertIn("urn:xmpp:ping", h.endpoint.written())
        h.clock.advance(10)  # timeout (10s) — and the next ping is not sent
        self.assertTrue(h.endpoint.transport.disconnecting)

    def test_no_keepalive_when_disabled(self) -> None:
        h = Harness(self, ping_interval=0, presence_interval=0)
        h.connect()
        h.endpoint.written()
        h.clock.advance(3600)
        self.assertEqual(h.endpoint.written(), "")

    def test_answers_requests(self) -> None:
        h = Harness(self)
        h.connect()
        h.endpoint.written()
        h.endpoint.feed(
            "<iq type='get' id='p1' from='example.org' to='bot@example.org/jb'>"
            "<ping xmlns='urn:xmpp:ping'/></iq>"
        )
        self.assertEqual(
            h.endpoint.written(),
            "<iq to='example.org' from='bot@example.org/jb' id='p1' type='result'/>",
        )
        h.endpoint.feed(
            "<iq type='get' id='d1' from='a@example.org/x'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        disco = h.endpoint.written()
        self.assertIn("type='result'", disco)
        self.assertIn("var='urn:xmpp:ping'", disco)
        h.endpoint.feed(
            "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
            "<item jid='a@example.org'/></query></iq>"
        )
        self.assertIn("id='r1' type='result'", h.endpoint.written())
        h.endpoint.feed(
            "<iq type='get' id='v1' from='a@example.org/x'>"
            "<query xmlns='jabber:iq:version'/></iq>"
        )
        unsupported = h.endpoint.written()
        self.assertIn("type='error'", unsupported)
        self.assertIn("service-unavailable", unsupported)

    def test_subscriptions_mirrored(self) -> None:
        h = Harness(self)
        h.connect()
        h.endpoint.written()
        h.endpoint.feed("<presence from='a@example.org/x' type='subscribe'/>")
        sent = h.endpoint.written()
        self.assertIn("<presence type='subscribed' to='a@example.org'/>", sent)
        self.assertIn("<presence type='subscribe' to='a@example.org'/>", sent)
        h.endpoint.feed("<presence from='a@example.org' type='unsubscribe'/>")
        sent = h.endpoint.written()
        self.assertIn("type='unsubscribed'", sent)
        self.assertIn("type='unsubscribe'", sent)
        h.endpoint.feed("<presence from='a@example.org/x'/>")
        self.assertEqual(h.endpoint.written(), "")

    def test_stop(self) -> None:
        h = Harness(self)
        h.connect()
        h.endpoint.written()
        stopped = Deferred.fromCoroutine(h.transport.stop())
        sent = h.endpoint.written()
        self.assertIn("type='unavailable'", sent)
        self.assertIn("</stream:stream>", sent)
        self.assertTrue(h.endpoint.transport.disconnecting)
        self.assertNoResult(stopped)
        h.endpoint.lose()
        self.successResultOf(stopped)
        self.assertEqual(h.ctx.status_types(), [("xmpp", "ok", "connected")])
        # No reconnection after stop; stopping again is fine.
        h.clock.advance(100)
        self.assertEqual(h.endpoint.attempts, 1)
        self.successResultOf(Deferred.fromCoroutine(h.transport.stop()))

    def test_stop_before_start_and_while_waiting(self) -> None:
        h = Harness(self)
        self.successResultOf(Deferred.fromCoroutine(h.transport.stop()))
        h.start()
        self.assertEqual(h.endpoint.attempts, 0)

        h2 = Harness(self)
        h2.endpoint.refuse = True
        h2.start()
        waiting = h2.outbound(mt("alice@example.org"))
        self.successResultOf(Deferred.fromCoroutine(h2.transport.stop()))
        self.successResultOf(waiting)
        self.assertEqual(h2.ctx.events[-1]["nack_reason"], NOT_CONNECTED_REASON)
        h2.clock.advance(100)
        self.assertEqual(h2.endpoint.attempts, 1)

    def test_stop_while_logging_in(self) -> None:
        h = Harness(self)
        h.start()
        stopped = Deferred.fromCoroutine(h.transport.stop())
        h.endpoint.lose()
        self.successResultOf(stopped)
        self.assertEqual(h.ctx.statuses, [])

    def test_debug_logging(self) -> None:
        h = Harness(self, debug=True)
        h.connect()
        self.assertIsNotNone(h.endpoint.proto.rawDataInFn)
        self.assertIsNotNone(h.endpoint.proto.rawDataOutFn)
