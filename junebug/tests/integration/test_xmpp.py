"""The ``xmpp`` channel against a real Prosody server.

Each test runs a private Prosody (see :mod:`junebug.tests.support.prosody`; it is
installed from Debian's packages when missing).  The channel logs in as
``channel@localhost``; a second, independent client built on Twisted's own XMPP
stack plays the person chatting with it.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from junebug.converter import structure
from junebug.messages import user_message
from junebug.testing.context import RecordingContext
from junebug.testing.polling import wait_until
from junebug.tests.support.prosody import (
    ProsodyServer,
    XmppPeer,
    ensure_prosody,
    start_prosody,
)
from junebug.transports.xmpp.transport import (
    NOT_CONNECTED_REASON,
    XmppConfig,
    XmppTransport,
)

CHANNEL_PASSWORD = "channel-secret"
PEER_PASSWORD = "peer-secret"
ACCOUNTS = {"channel": CHANNEL_PASSWORD, "peer": PEER_PASSWORD}

# The first test may install prosody (apt-get), which can take minutes; each
# wait inside a test is bounded on its own (10-15 s).
pytestmark = pytest.mark.timeout(600)


class XmppAgainstProsodyTests(TestCase):
    timeout = 600

    async def start_server(self, tls: bool = False) -> ProsodyServer:
        return await start_prosody(self, reactor, ACCOUNTS, tls=tls)

    def channel(
        self, server: ProsodyServer, **overrides: Any
    ) -> tuple[XmppTransport, RecordingContext]:
        config = {
            "username": server.jid("channel") + "/junebug",
            "password": CHANNEL_PASSWORD,
            "host": server.host,
            "port": server.port,
            "status": "chat",
            "status_message": "Junebug test channel",
            "reconnect_delay": 0.2,
            "reconnect_max_delay": 0.5,
            "connect_timeout": 5,
            **overrides,
        }
        ctx = RecordingContext(reactor)
        transport = XmppTransport(ctx.context, structure(config, XmppConfig))
        self.addCleanup(lambda: Deferred.fromCoroutine(transport.stop()))
        return transport, ctx

    async def peer(self, server: ProsodyServer) -> XmppPeer:
        peer = XmppPeer(reactor, server.jid("peer") + "/phone", PEER_PASSWORD)
        try:
            await peer.connect(server.host, server.port)
        except Exception as exc:
            self.fail(f"peer login failed: {exc!r}\nprosody said:\n{server.output}")
        self.addCleanup(lambda: Deferred.fromCoroutine(peer.close()))
        return peer

    async def test_chat_in_and_out(self) -> None:
        """A peer's chat becomes an MO; an MT reaches the peer and is acked."""
        server = await self.start_server()
        transport, ctx = self.channel(server)
        await transport.start()
        await transport.wait_connected().addTimeout(10, reactor)
        self.assertEqual(ctx.status_types(), [("xmpp", "ok", "connected")])
        self.assertEqual(transport.bound_jid, "channel@localhost/junebug")
        peer = await self.peer(server)

        peer.send_chat("channel@localhost", "  hello junebug  ", stanza_id="abc-1")
        mo = await ctx.next_inbound()
        self.assertEqual(mo["content"], "hello junebug")
        self.assertEqual(mo["from_addr"], "peer@localhost")
        self.assertEqual(mo["to_addr"], "channel@localhost")
        self.assertEqual(mo["transport_type"], "xmpp")
        self.assertEqual(mo["transport_name"], "chan-1")
        self.assertEqual(mo["transport_metadata"], {"xmpp_id": "abc-1"})
        self.assertIsNone(mo["session_event"])

        mt = user_message(
            to_addr=mo["from_addr"],
            from_addr=mo["to_addr"],
            transport_name="chan-1",
            content="hi there\nsecond line \u2603",
        )
        await transport.handle_outbound(mt)
        received = await peer.next_message()
        self.assertEqual(str(received.body), "hi there\nsecond line \u2603")
        self.assertEqual(received["type"], "chat")
        self.assertEqual(received["from"], "channel@localhost/junebug")
        self.assertEqual(received["id"], mt["message_id"])
        [event] = ctx.events
        self.assertEqual(event["event_type"], "ack")
        self.assertEqual(event["user_message_id"], mt["message_id"])
        self.assertEqual(event["sent_message_id"], mt["message_id"])

    async def test_message_to_itself_and_ping(self) -> None:
        """A chat to the channel's own JID comes back as an MO; pings get pongs."""
        server = await self.start_server()
        transport, ctx = self.channel(server, ping_interval=0.2)
        await transport.start()
        await transport.wait_connected().addTimeout(10, reactor)
        mt = user_message(
            to_addr="channel@localhost",
            from_addr="channel@localhost",
            transport_name="chan-1",
            content="note to self",
        )
        await transport.handle_outbound(mt)
        mo = await ctx.next_inbound()
        self.assertEqual(
            (mo["from_addr"], mo["to_addr"], mo["content"]),
            ("channel@localhost", "channel@localhost", "note to self"),
        )
        self.assertEqual(mo["transport_metadata"], {"xmpp_id": mt["message_id"]})
        # Several ping rounds later the stream is still the same one.
        stream = transport._stream
        await wait_until(lambda: transport.pings_answered >= 3, timeout=10)
        self.assertIs(transport._stream, stream)
        self.assertEqual(ctx.status_types(), [("xmpp", "ok", "connected")])

    async def test_reconnects_after_server_restart(self) -> None:
        """Server gone: status down, MT nacked; server back: reconnected, MT sent."""
        server = await self.start_server()
        transport, ctx = self.channel(server, send_timeout=0.2)
        await transport.start()
        await transport.wait_connected().addTimeout(10, reactor)

        await server.stop()
        await wait_until(lambda: not transport.connected, timeout=10)
        await wait_until(
            lambda: ("xmpp", "down", "connection_lost") in ctx.status_types()
        )
        lost = ctx.statuses[
            ctx.status_types().index(("xmpp", "down", "connection_lost"))
        ]
        # Prosody usually says goodbye with a system-shutdown stream error,
        # which the message then names; the connection may also just drop.
        self.assertTrue(lost["message"].startswith("Connection lost: "))
        mt = user_message(
            to_addr="peer@localhost",
            from_addr="channel@localhost",
            transport_name="chan-1",
            content="while down",
        )
        await transport.handle_outbound(mt)
        [nacked] = ctx.events
        self.assertEqual(nacked["event_type"], "nack")
        self.assertEqual(nacked["nack_reason"], NOT_CONNECTED_REASON)
        # Attempts while the server is down fail (and are reported once).
        await wait_until(
            lambda: ("xmpp", "down", "connection_failed") in ctx.status_types(),
            timeout=10,
        )

        await server.start()
        await transport.wait_connected().addTimeout(15, reactor)
        self.assertEqual(ctx.status_types()[-1], ("xmpp", "ok", "connected"))
        peer = await self.peer(server)
        mt2 = user_message(
            to_addr="peer@localhost/phone",
            from_addr="channel@localhost",
            transport_name="chan-1",
            content="back again",
        )
        await transport.handle_outbound(mt2)
        received = await peer.next_message()
        self.assertEqual(str(received.body), "back again")
        self.assertEqual(ctx.events[-1]["event_type"], "ack")
        peer.send_chat("channel@localhost", "welcome back")
        mo = await ctx.next_inbound()
        self.assertEqual(mo["content"], "welcome back")

    async def test_message_waits_for_the_stream(self) -> None:
        """An MT handled before the login finishes is sent once logged in."""
        server = await self.start_server()
        transport, ctx = self.channel(server, send_timeout=10)
        peer = await self.peer(server)
        await transport.start()
        self.assertFalse(transport.connected)
        mt = user_message(
            to_addr="peer@localhost",
            from_addr="channel@localhost",
            transport_name="chan-1",
            content="first words",
        )
        await transport.handle_outbound(mt)
        self.assertEqual(ctx.events[-1]["event_type"], "ack")
        received = await peer.next_message()
        self.assertEqual(str(received.body), "first words")

    async def test_wrong_password(self) -> None:
        """A refused login is reported as auth_failed and retried with back-off."""
        server = await self.start_server()
        transport, ctx = self.channel(server, password="wrong")
        await transport.start()
        await wait_until(lambda: ctx.statuses, timeout=10)
        [status] = ctx.statuses
        self.assertEqual((status["status"], status["type"]), ("down", "auth_failed"))
        self.assertEqual(status["component"], "xmpp")
        self.assertIn("not-authorized", status["message"])
        self.assertFalse(transport.connected)

    async def test_starttls(self) -> None:
        """STARTTLS with the server's certificate trusted: logged in over TLS."""
        server = await self.start_server(tls=True)
        transport, ctx = self.channel(
            server, tls="required", tls_ca_certificate=server.ca_certificate
        )
        await transport.start()
        await transport.wait_connected().addTimeout(10, reactor)
        stream: Any = transport._stream
        self.assertIsNotNone(stream.transport.getPeerCertificate())
        mt = user_message(
            to_addr="channel@localhost",
            from_addr="channel@localhost",
            transport_name="chan-1",
            content="over tls",
        )
        await transport.handle_outbound(mt)
        mo = await ctx.next_inbound()
        self.assertEqual(mo["content"], "over tls")

    async def test_starttls_untrusted_certificate(self) -> None:
        """An untrusted certificate fails the attempt (connection_failed)."""
        server = await self.start_server(tls=True)
        transport, ctx = self.channel(server)
        await transport.start()
        await wait_until(lambda: ctx.statuses, timeout=10)
        self.assertEqual(ctx.status_types()[0], ("xmpp", "down", "connection_failed"))
        self.assertFalse(transport.connected)


class ProsodyHelperTests(TestCase):
    timeout = 600

    async def test_moves_off_a_taken_port(self) -> None:
        """A port taken before Prosody binds it: the helper picks another."""
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        self.addCleanup(taken.close)
        port = taken.getsockname()[1]
        binaries = await ensure_prosody(reactor)
        workdir = Path(tempfile.mkdtemp(prefix="junebug-prosody-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        server = ProsodyServer(reactor, binaries, workdir, port)
        self.addCleanup(lambda: Deferred.fromCoroutine(server.stop()))
        await server.register("peer", PEER_PASSWORD)
        await server.start()
        self.assertNotEqual(server.port, port)
        self.assertIn("Failed to open server port", server.output)
        peer = XmppPeer(reactor, server.jid("peer"), PEER_PASSWORD)
        await peer.connect(server.host, server.port)
        await peer.close()
