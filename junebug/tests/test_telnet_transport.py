"""Tests for the ``telnet`` and ``telnet_addr`` transports."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, DeferredQueue, fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import CannotListenError
from twisted.internet.testing import (
    MemoryReactorClock,
    StringTransport,
    StringTransportWithDisconnection,
)
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.converter import structure
from junebug.errors import ConfigError
from junebug.messages import Message, user_message
from junebug.stores.memory import MemoryBackend
from junebug.transports.interface import TransportContext
from junebug.transports.telnet import transport as transport_module
from junebug.transports.telnet.protocol import DO, DONT, IAC, SB, SE, WILL, WONT
from junebug.transports.telnet.transport import (
    AddressedTelnetTransport,
    TelnetConfig,
    TelnetTransport,
)

NAWS = 31
ECHO = 1


class FakeContext:
    """Collects what a transport publishes; inbound publishes can be held."""

    def __init__(self, reactor: Any, channel_id: str = "chan-1") -> None:
        self.inbound: list[Message] = []
        self.events: list[Message] = []
        self.statuses: list[Message] = []
        self.started: list[Message] = []
        self.inbound_queue: DeferredQueue[Message] = DeferredQueue()
        self.event_queue: DeferredQueue[Message] = DeferredQueue()
        self.hold_inbound = False
        self.held: list[Deferred[None]] = []
        self.fail_inbound = False
        self.context = TransportContext(
            channel_id=channel_id,
            reactor=reactor,
            publish_inbound=self._publish_inbound,
            publish_event=self._publish_event,
            publish_status=self._publish_status,
            store=MemoryBackend(reactor),
            log=Logger(),
        )

    async def _publish_inbound(self, msg: Message) -> None:
        self.started.append(msg)
        if self.hold_inbound:
            d: Deferred[None] = Deferred()
            self.held.append(d)
            await d
        if self.fail_inbound:
            raise RuntimeError("broker down")
        self.inbound.append(msg)
        self.inbound_queue.put(msg)

    async def _publish_event(self, msg: Message) -> None:
        self.events.append(msg)
        self.event_queue.put(msg)

    async def _publish_status(self, msg: Message) -> None:
        self.statuses.append(msg)

    def release_held(self) -> None:
        held, self.held = self.held, []
        for d in held:
            d.callback(None)


def mt(to_addr: str | None, content: str | None, **kw: Any) -> Message:
    return user_message(
        to_addr=to_addr,
        from_addr="0.0.0.0:9001",
        transport_name="chan-1",
        content=content,
        **kw,
    )


def sessions(msgs: list[Message]) -> list[tuple[Any, Any, Any]]:
    return [(m["session_event"], m["from_addr"], m["content"]) for m in msgs]


# ---------------------------------------------------------------------------
# config


class TelnetConfigTests(SynchronousTestCase):
    def test_endpoint(self) -> None:
        config = structure({"twisted_endpoint": "tcp:9001"}, TelnetConfig)
        self.assertEqual(config.endpoint, "tcp:9001")
        self.assertIsNone(config.to_addr)
        self.assertEqual(config.transport_type, "telnet")

    def test_unknown_keys_ignored(self) -> None:
        config = structure(
            {"twisted_endpoint": "tcp:0", "worker_name": "x", "publish_status": True},
            TelnetConfig,
        )
        self.assertEqual(config.endpoint, "tcp:0")

    def test_legacy_host_and_port(self) -> None:
        config = structure(
            {"telnet_host": "127.0.0.1", "telnet_port": 9001}, TelnetConfig
        )
        self.assertEqual(config.endpoint, "tcp:interface=127.0.0.1:port=9001")

    def test_legacy_port_only(self) -> None:
        config = structure({"telnet_port": 9001}, TelnetConfig)
        self.assertEqual(config.endpoint, "tcp:port=9001")

    def test_legacy_ipv6_host_is_escaped(self) -> None:
        config = TelnetConfig(telnet_host="::1", telnet_port=23)
        self.assertEqual(config.endpoint, "tcp:interface=\\:\\:1:port=23")

    def test_endpoint_wins_over_legacy(self) -> None:
        config = TelnetConfig(twisted_endpoint="tcp:1234", telnet_port=9001)
        self.assertEqual(config.endpoint, "tcp:1234")

    def test_endpoint_or_port_required(self) -> None:
        with self.assertRaises(ConfigError) as cm:
            structure({"to_addr": "x"}, TelnetConfig)
        self.assertIn("twisted_endpoint", str(cm.exception))

    def test_bad_endpoint(self) -> None:
        with self.assertRaises(ConfigError) as cm:
            structure({"twisted_endpoint": "bogus:1"}, TelnetConfig)
        self.assertIn("twisted_endpoint", str(cm.exception))
        with self.assertRaises(ConfigError):
            TelnetConfig(twisted_endpoint="tcp:notaport")
        with self.assertRaises(ConfigError):
            TelnetConfig(twisted_endpoint="  ")

    def test_bad_port(self) -> None:
        with self.assertRaises(ConfigError) as cm:
            TelnetConfig(telnet_port=70000)
        self.assertIn("telnet_port", str(cm.exception))
        with self.assertRaises(ConfigError) as cm:
            structure({"telnet_port": "9001"}, TelnetConfig)
        self.assertIn("telnet_port", str(cm.exception))

    def test_transport_classes(self) -> None:
        self.assertIs(TelnetTransport.CONFIG_CLASS, TelnetConfig)
        self.assertIs(AddressedTelnetTransport.CONFIG_CLASS, TelnetConfig)
        self.assertEqual(TelnetTransport.TRANSPORT_TYPE, "telnet")


# ---------------------------------------------------------------------------
# unit tests on a memory reactor


class _Harness:
    """A transport on a MemoryReactorClock, with StringTransport clients."""

    def __init__(
        self,
        test: SynchronousTestCase,
        cls: type[TelnetTransport] = TelnetTransport,
        **config: Any,
    ) -> None:
        self.test = test
        self.reactor = MemoryReactorClock()
        self.fake = FakeContext(self.reactor)
        config.setdefault("twisted_endpoint", "tcp:9001")
        self.transport = cls(self.fake.context, TelnetConfig(**config))
        self.run(self.transport.start())

    def run(self, coro: Any) -> Any:
        return self.test.successResultOf(Deferred.fromCoroutine(coro))

    @property
    def factory(self) -> Any:
        return self.reactor.tcpServers[-1][1]

    def connect(
        self, host: str = "10.0.0.1", port: int = 5555
    ) -> tuple[Any, StringTransportWithDisconnection]:
        proto = self.factory.buildProtocol(IPv4Address("TCP", host, port))
        tr = StringTransportWithDisconnection(
            hostAddress=IPv4Address("TCP", "10.0.0.254", 9001),
            peerAddress=IPv4Address("TCP", host, port),
        )
        tr.protocol = proto
        proto.makeConnection(tr)
        return proto, tr

    def send(self, conn: tuple[Any, Any], text: str | bytes) -> None:
        data = text.encode("utf-8") if isinstance(text, str) else text
        conn[0].dataReceived(data)

    def outbound(self, msg: Message) -> None:
        self.run(self.transport.handle_outbound(msg))

    @property
    def inbound(self) -> list[Message]:
        return self.fake.inbound

    @property
    def events(self) -> list[Message]:
        return self.fake.events


class TelnetTransportUnitTests(SynchronousTestCase):
    def test_listens_on_endpoint(self) -> None:
        h = _Harness(self)
        self.assertEqual(h.reactor.tcpServers[0][0], 9001)
        self.assertEqual(h.transport.port, 9001)
        self.assertEqual(h.transport.address, "0.0.0.0:9001")

    def test_legacy_config_listens(self) -> None:
        reactor = MemoryReactorClock()
        fake = FakeContext(reactor)
        transport = TelnetTransport(
            fake.context, TelnetConfig(telnet_host="127.0.0.1", telnet_port=9002)
        )
        self.successResultOf(Deferred.fromCoroutine(transport.start()))
        port, _factory, _backlog, interface = reactor.tcpServers[0]
        self.assertEqual((port, interface), (9002, "127.0.0.1"))

    def test_connect_publishes_new(self) -> None:
        h = _Harness(self)
        h.connect()
        [msg] = h.inbound
        self.assertEqual(msg["message_type"], "user_message")
        self.assertEqual(msg["session_event"], "new")
        self.assertIsNone(msg["content"])
        self.assertEqual(msg["from_addr"], "10.0.0.1:5555")
        self.assertEqual(msg["to_addr"], "0.0.0.0:9001")
        self.assertEqual(msg["transport_name"], "chan-1")
        self.assertEqual(msg["transport_type"], "telnet")
        self.assertEqual(h.transport.client_addresses, ["10.0.0.1:5555"])

    def test_config_to_addr_and_transport_type(self) -> None:
        h = _Harness(self, to_addr="*120#", transport_type="ussd")
        conn = h.connect()
        h.send(conn, "hi\r\n")
        self.assertEqual([m["to_addr"] for m in h.inbound], ["*120#", "*120#"])
        self.assertEqual({m["transport_type"] for m in h.inbound}, {"ussd"})

    def test_lines_publish_resume(self) -> None:
        h = _Harness(self)
        conn = h.connect()
        h.send(conn, "hello\r\n")
        h.send(conn, "a\nb\r\n")
        h.send(conn, "he")
        h.send(conn, "llo\r")
        h.send(conn, "\nbare cr\r\x00")
        h.send(conn, "\r\n")
        self.assertEqual(
            [m["content"] for m in h.inbound[1:]],
            ["hello", "a", "b", "hello", "bare cr", ""],
        )
        self.assertEqual({m["session_event"] for m in h.inbound[1:]}, {"resume"})
        self.assertEqual({m["from_addr"] for m in h.inbound[1:]}, {"10.0.0.1:5555"})

    def test_partial_line_is_not_published(self) -> None:
        h = _Harness(self)
        conn = h.connect()
        h.send(conn, "no newline yet")
        self.assertEqual(len(h.inbound), 1)

    def test_utf8_decoding(self) -> None:
        h = _Harness(self)
        conn = h.connect()
        h.send(conn, "héllo ☃\r\n")
        h.send(conn, b"bad \xc3\x28 byte\r\n")
        self.assertEqual(h.inbound[1]["content"], "héllo ☃")
        self.assertEqual(h.inbound[2]["content"], "bad \ufffd( byte")

    def test_telnet_negotiation_is_stripped_and_refused(self) -> None:
        h = _Harness(self)
        proto, tr = h.connect()
        h.send(
            (proto, tr),
            bytes([IAC, WILL, NAWS, IAC, DO, ECHO, IAC, WONT, 3, IAC, DONT, 3])
            + bytes([IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE])
            + b"h"
            + bytes([IAC, 241])  # NOP in the middle of a line
            + b"i\r\n",
        )
        self.assertEqual([m["content"] for m in h.inbound[1:]], ["hi"])
        self.assertEqual(tr.value(), bytes([IAC, DONT, NAWS, IAC, WONT, ECHO]))

    def test_negotiation_split_across_chunks(self) -> None:
        h = _Harness(self)
        conn = h.connect()
        h.send(conn, bytes([IAC]))
        h.send(conn, bytes([SB, NAWS, 0, 80]))
        h.send(conn, bytes([IAC, IAC, 0, 24, IAC]))  # escaped IAC inside SB
        h.send(conn, bytes([SE]) + b"ok\r\n")
        self.assertEqual([m["content"] for m in h.inbound[1:]], ["ok"])

    def test_escaped_iac_is_data(self) -> None:
        h = _Harness(self)
        conn = h.connect()
        h.send(conn, b"a" + bytes([IAC, IAC]) + b"b\r\n")
        self.assertEqual(h.inbound[1]["content"], "a\ufffdb")

    def test_quit_closes_without_resume(self) -> None:
        for command in ("/quit", "/QUIT", " /Quit "):
            h = _Harness(self)
            proto, tr = h.connect()
            h.send((proto, tr), f"hi\r\n{command}\r\nignored\r\n")
            self.assertFalse(tr.connected)
            self.assertEqual(
                sessions(h.inbound),
                [
                    ("new", "10.0.0.1:5555", None),
                    ("resume", "10.0.0.1:5555", "hi"),
                    ("close", "10.0.0.1:5555", None),
                ],
            )
            self.assertEqual(h.transport.client_addresses, [])

    def test_quit_inside_text_is_a_line(self) -> None:
        h = _Harness(self)
        proto, tr = h.connect()
        h.send((proto, tr), "/quit now\r\n")
        self.assertTrue(tr.connected)
        self.assertEqual(h.inbound[1]["content"], "/quit now")

    def test_disconnect_publishes_close(self) -> None:
        h = _Harness(self)
        proto, _tr = h.connect()
        proto.connectionLost(Failure(ConnectionError()))
        self.assertEqual(
            sessions(h.inbound),
            [("new", "10.0.0.1:5555", None), ("close", "10.0.0.1:5555", None)],
        )
        self.assertEqual(h.transport.client_addresses, [])

    def test_long_line_drops_connection(self) -> None:
        h = _Harness(self)
        proto, tr = h.connect()
        h.send((proto, tr), b"x" * (proto.MAX_LINE_LENGTH + 1))
        self.assertFalse(tr.connected)
        self.assertEqual([m["session_event"] for m in h.inbound], ["new", "close"])

    def test_outbound_to_client(self) -> None:
        h = _Harness(self)
        _proto, tr = h.connect()
        other = h.connect(port=6666)
        msg = mt("10.0.0.1:5555", "hello\r\nthere\rfriend ☃")
        h.outbound(msg)
        self.assertEqual(tr.value(), "hello\r\nthere\r\nfriend ☃\r\n".encode())
        self.assertEqual(other[1].value(), b"")
        [event] = h.events
        self.assertEqual(event["event_type"], "ack")
        self.assertEqual(event["user_message_id"], msg["message_id"])
        self.assertEqual(event["sent_message_id"], msg["message_id"])
        self.assertEqual(event["transport_name"], "chan-1")
        self.assertTrue(tr.connected)

    def test_outbound_close(self) -> None:
        h = _Harness(self)
        _proto, tr = h.connect()
        h.outbound(mt("10.0.0.1:5555", "bye", session_event="close"))
        self.assertEqual(tr.value(), b"bye\r\n")
        self.assertFalse(tr.connected)
        self.assertEqual([m["session_event"] for m in h.inbound], ["new", "close"])
        self.assertEqual([e["event_type"] for e in h.events], ["ack"])

    def test_outbound_without_content(self) -> None:
        h = _Harness(self)
        _proto, tr = h.connect()
        h.outbound(mt("10.0.0.1:5555", None))
        self.assertEqual(tr.value(), b"")
        self.assertTrue(tr.connected)
        h.outbound(mt("10.0.0.1:5555", None, session_event="close"))
        self.assertEqual(tr.value(), b"")
        self.assertFalse(tr.connected)
        self.assertEqual([e["event_type"] for e in h.events], ["ack", "ack"])

    def test_outbound_unknown_address(self) -> None:
        h = _Harness(self)
        _p1, tr1 = h.connect()
        _p2, tr2 = h.connect(port=6666)
        msg = mt("10.9.9.9:1", "lost")
        h.outbound(msg)
        for tr in (tr1, tr2):
            self.assertEqual(tr.value(), b"UNKNOWN ADDR [10.9.9.9:1]: lost\r\n")
            self.assertTrue(tr.connected)
        [event] = h.events
        self.assertEqual(event["event_type"], "nack")
        self.assertEqual(event["nack_reason"], "Unknown address.")
        self.assertEqual(event["user_message_id"], msg["message_id"])

    def test_outbound_after_disconnect_is_unknown(self) -> None:
        h = _Harness(self)
        proto, _tr = h.connect()
        proto.connectionLost(Failure(ConnectionError()))
        h.outbound(mt("10.0.0.1:5555", "late"))
        self.assertEqual([e["event_type"] for e in h.events], ["nack"])

    def test_outbound_without_clients(self) -> None:
        h = _Harness(self)
        h.outbound(mt("x", "nobody"))
        self.assertEqual(h.events[0]["nack_reason"], "Unknown address.")

    def test_mo_order_per_client(self) -> None:
        h = _Harness(self)
        h.fake.hold_inbound = True
        conn = h.connect()
        h.send(conn, "one\r\ntwo\r\n")
        # Only the connect MO is in flight; the lines wait behind it.
        self.assertEqual([m["session_event"] for m in h.fake.started], ["new"])
        h.fake.release_held()
        self.assertEqual([m["content"] for m in h.fake.started], [None, "one"])
        h.fake.release_held()
        h.fake.release_held()
        self.assertEqual(
            [(m["session_event"], m["content"]) for m in h.inbound],
            [("new", None), ("resume", "one"), ("resume", "two")],
        )

    def test_publish_failure_does_not_block_later_mos(self) -> None:
        h = _Harness(self)
        h.fake.fail_inbound = True
        conn = h.connect()
        h.fake.fail_inbound = False
        h.send(conn, "after\r\n")
        self.assertEqual([m["content"] for m in h.inbound], ["after"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_stop_disconnects_and_publishes_close(self) -> None:
        h = _Harness(self)
        _p1, tr1 = h.connect()
        _p2, tr2 = h.connect(port=6666)
        h.run(h.transport.stop())
        self.assertFalse(tr1.connected)
        self.assertFalse(tr2.connected)
        self.assertEqual(
            sorted(sessions(h.inbound)),
            [
                ("close", "10.0.0.1:5555", None),
                ("close", "10.0.0.1:6666", None),
                ("new", "10.0.0.1:5555", None),
                ("new", "10.0.0.1:6666", None),
            ],
        )
        self.assertIsNone(h.transport.port)
        # A second stop is fine.
        h.run(h.transport.stop())

    def test_stop_waits_for_publishes(self) -> None:
        h = _Harness(self)
        h.fake.hold_inbound = True
        h.connect()
        stopped = Deferred.fromCoroutine(h.transport.stop())
        self.assertNoResult(stopped)
        h.fake.release_held()  # the "new"
        self.assertNoResult(stopped)
        h.fake.release_held()  # the "close"
        self.successResultOf(stopped)
        self.assertEqual([m["session_event"] for m in h.inbound], ["new", "close"])

    def test_concurrent_stops_both_wait(self) -> None:
        h = _Harness(self)
        h.fake.hold_inbound = True
        h.connect()
        first = Deferred.fromCoroutine(h.transport.stop())
        second = Deferred.fromCoroutine(h.transport.stop())
        self.assertNoResult(first)
        self.assertNoResult(second)
        h.fake.release_held()
        h.fake.release_held()
        self.successResultOf(first)
        self.successResultOf(second)

    def test_stop_gives_up_on_a_hung_publish(self) -> None:
        h = _Harness(self)
        h.fake.hold_inbound = True
        h.connect()
        stopped = Deferred.fromCoroutine(h.transport.stop())
        self.assertNoResult(stopped)
        h.reactor.advance(TelnetTransport.STOP_TIMEOUT + 1)
        self.successResultOf(stopped)
        self.assertEqual(h.reactor.getDelayedCalls(), [])

    def test_stop_aborts_clients_that_do_not_go(self) -> None:
        h = _Harness(self)
        proto = h.factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
        tr = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 1))
        proto.makeConnection(tr)  # loseConnection never reports back
        stopped = Deferred.fromCoroutine(h.transport.stop())
        self.assertNoResult(stopped)
        h.reactor.advance(TelnetTransport.STOP_TIMEOUT + 1)
        h.reactor.advance(TelnetTransport.STOP_TIMEOUT + 1)
        self.successResultOf(stopped)
        self.assertTrue(tr.disconnected)

    def test_stop_before_start(self) -> None:
        reactor = MemoryReactorClock()
        transport = TelnetTransport(
            FakeContext(reactor).context, TelnetConfig(twisted_endpoint="tcp:1")
        )
        self.successResultOf(Deferred.fromCoroutine(transport.stop()))
        self.successResultOf(Deferred.fromCoroutine(transport.stop()))
        # Starting after stop does not listen.
        self.successResultOf(Deferred.fromCoroutine(transport.start()))
        self.assertEqual(reactor.tcpServers, [])

    def test_stop_while_start_is_binding(self) -> None:
        listening: Deferred[Any] = Deferred()

        class SlowEndpoint:
            def listen(self, factory: Any) -> Deferred[Any]:
                return listening

        self.patch(
            transport_module, "serverFromString", lambda reactor, desc: SlowEndpoint()
        )
        reactor = MemoryReactorClock()
        transport = TelnetTransport(
            FakeContext(reactor).context, TelnetConfig(twisted_endpoint="tcp:1")
        )
        started = Deferred.fromCoroutine(transport.start())
        self.assertNoResult(started)
        self.successResultOf(Deferred.fromCoroutine(transport.stop()))
        # The pending listen was cancelled; start returns quietly.
        self.successResultOf(started)
        self.assertIsNone(transport.port)

    def test_start_failure_then_stop(self) -> None:
        class FailingEndpoint:
            def listen(self, factory: Any) -> Deferred[Any]:
                return fail(CannotListenError("", 1, OSError("in use")))

        self.patch(
            transport_module,
            "serverFromString",
            lambda reactor, desc: FailingEndpoint(),
        )
        transport = TelnetTransport(
            FakeContext(MemoryReactorClock()).context,
            TelnetConfig(twisted_endpoint="tcp:1"),
        )
        self.failureResultOf(
            Deferred.fromCoroutine(transport.start()), CannotListenError
        )
        self.successResultOf(Deferred.fromCoroutine(transport.stop()))


class AddressedTelnetTransportUnitTests(SynchronousTestCase):
    def register(
        self, h: _Harness, to_addr: str, from_addr: str, port: int = 5555
    ) -> tuple[Any, StringTransportWithDisconnection]:
        conn = h.connect(port=port)
        h.send(conn, f"{to_addr}\r\n{from_addr}\r\n")
        conn[1].clear()
        return conn

    def test_prompts_and_registration(self) -> None:
        h = _Harness(self, AddressedTelnetTransport)
        proto, tr = h.connect()
        self.assertEqual(tr.value(), b'Please provide "to_addr":\r\n')
        self.assertEqual(h.inbound, [])
        tr.clear()
        h.send((proto, tr), "\r\n")  # empty: asked again
        self.assertEqual(tr.value(), b'Please provide "to_addr":\r\n')
        tr.clear()
        h.send((proto, tr), " *120# \r\n")
        self.assertEqual(tr.value(), b'Please provide "from_addr":\r\n')
        self.assertEqual(h.inbound, [])
        self.assertEqual(h.transport.client_addresses, [])
        tr.clear()
        h.send((proto, tr), "+27831234567\r\n")
        self.assertEqual(
            tr.value(),
            b"[Sending all messages to: *120# and from: +27831234567]\r\n",
        )
        [msg] = h.inbound
        self.assertEqual(msg["session_event"], "new")
        self.assertIsNone(msg["content"])
        self.assertEqual(msg["to_addr"], "*120#")
        self.assertEqual(msg["from_addr"], "+27831234567")
        self.assertEqual(msg["transport_type"], "telnet")
        self.assertEqual(h.transport.client_addresses, ["+27831234567"])

        h.send((proto, tr), "1\r\n")
        self.assertEqual(h.inbound[1]["session_event"], "resume")
        self.assertEqual(h.inbound[1]["content"], "1")
        self.assertEqual(h.inbound[1]["to_addr"], "*120#")

        proto.connectionLost(Failure(ConnectionError()))
        self.assertEqual(h.inbound[2]["session_event"], "close")
        self.assertEqual(h.inbound[2]["from_addr"], "+27831234567")
        self.assertEqual(h.inbound[2]["to_addr"], "*120#")

    def test_to_addr_is_per_connection(self) -> None:
        h = _Harness(self, AddressedTelnetTransport)
        a = self.register(h, "*120#", "alice", port=1)
        b = self.register(h, "*130#", "bob", port=2)
        h.send(a, "from a\r\n")
        h.send(b, "from b\r\n")
        resumes = [m for m in h.inbound if m["session_event"] == "resume"]
        self.assertEqual(
            [(m["from_addr"], m["to_addr"]) for m in resumes],
            [("alice", "*120#"), ("bob", "*130#")],
        )

    def test_outbound_routes_by_from_addr(self) -> None:
        h = _Harness(self, AddressedTelnetTransport)
        _a, tra = self.register(h, "*120#", "alice", port=1)
        _b, trb = self.register(h, "*120#", "bob", port=2)
        h.outbound(mt("bob", "hi bob"))
        self.assertEqual(trb.value(), b"hi bob\r\n")
        self.assertEqual(tra.value(), b"")
        h.outbound(mt("10.0.0.1:1", "by peer"))
        self.assertEqual(h.events[-1]["event_type"], "nack")
        self.assertEqual(tra.value(), b"UNKNOWN ADDR [10.0.0.1:1]: by peer\r\n")

    def test_unregistered_disconnect_publishes_nothing(self) -> None:
        h = _Harness(self, AddressedTelnetTransport)
        proto, tr = h.connect()
        h.send((proto, tr), "*120#\r\n")
        proto.connectionLost(Failure(ConnectionError()))
        self.assertEqual(h.inbound, [])

    def test_quit_while_prompting(self) -> None:
        h = _Harness(self, AddressedTelnetTransport)
        proto, tr = h.connect()
        h.send((proto, tr), "/quit\r\n")
        self.assertFalse(tr.connected)
        self.assertEqual(h.inbound, [])

    def test_unregistered_clients_get_no_broadcast(self) -> None:
        h = _Harness(self, AddressedTelnetTransport)
        _proto, tr = h.connect()
        tr.clear()
        h.outbound(mt("nobody", "x"))
        self.assertEqual(tr.value(), b"")

    def test_same_from_addr_latest_wins(self) -> None:
        h = _Harness(self, AddressedTelnetTransport)
        first, _tr1 = self.register(h, "*1#", "alice", port=1)
        _second, tr2 = self.register(h, "*1#", "alice", port=2)
        first.connectionLost(Failure(ConnectionError()))
        h.outbound(mt("alice", "still here"))
        self.assertEqual(tr2.value(), b"still here\r\n")
        self.assertEqual(h.events[-1]["event_type"], "ack")


# ---------------------------------------------------------------------------
# real sockets


class LineClient(LineReceiver):
    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.lines: DeferredQueue[str] = DeferredQueue()
        self.raw = bytearray()
        self.chunks: DeferredQueue[bytes] = DeferredQueue()
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.raw.extend(data)
        self.chunks.put(data)
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        self.lines.put(line.decode("utf-8"))

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.lost.callback(None)

    def send_line(self, text: str) -> None:
        self.sendLine(text.encode("utf-8"))


def within(d: Deferred[Any], seconds: float = 5.0) -> Deferred[Any]:
    """Bound a wait so a broken test fails instead of hanging."""
    return d.addTimeout(seconds, global_reactor)


class RealSocketTests(TestCase):
    timeout = 30

    async def start(
        self, cls: type[TelnetTransport] = TelnetTransport, **config: Any
    ) -> tuple[TelnetTransport, FakeContext]:
        fake = FakeContext(global_reactor)
        config.setdefault("twisted_endpoint", "tcp:0:interface=127.0.0.1")
        transport = cls(fake.context, TelnetConfig(**config))
        await transport.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(transport.stop()))
        return transport, fake

    async def connect(self, transport: TelnetTransport) -> LineClient:
        assert transport.port is not None
        endpoint = TCP4ClientEndpoint(global_reactor, "127.0.0.1", transport.port)
        client = await within(connectProtocol(endpoint, LineClient()))
        self.addCleanup(self.disconnect, client)
        return client

    def disconnect(self, client: LineClient) -> Deferred[None]:
        if client.lost.called:
            return succeed(None)
        assert client.transport is not None
        client.transport.loseConnection()
        return within(client.lost)

    async def next_mo(self, fake: FakeContext) -> Message:
        msg: Message = await within(fake.inbound_queue.get())
        return msg

    async def next_event(self, fake: FakeContext) -> Message:
        msg: Message = await within(fake.event_queue.get())
        return msg

    async def next_line(self, client: LineClient) -> str:
        line: str = await within(client.lines.get())
        return line

    async def test_session(self) -> None:
        transport, fake = await self.start()
        self.assertNotEqual(transport.port, 0)
        self.assertEqual(transport.address, f"127.0.0.1:{transport.port}")
        client = await self.connect(transport)
        assert client.transport is not None
        me = client.transport.getHost()
        from_addr = f"{me.host}:{me.port}"

        new = await self.next_mo(fake)
        self.assertEqual(new["session_event"], "new")
        self.assertIsNone(new["content"])
        self.assertEqual(new["from_addr"], from_addr)
        self.assertEqual(new["to_addr"], f"127.0.0.1:{transport.port}")
        self.assertEqual(new["transport_name"], "chan-1")

        client.send_line("hello wörld")
        resume = await self.next_mo(fake)
        self.assertEqual(resume["session_event"], "resume")
        self.assertEqual(resume["content"], "hello wörld")

        msg = mt(from_addr, "reply\nline two")
        await transport.handle_outbound(msg)
        self.assertEqual(await self.next_line(client), "reply")
        self.assertEqual(await self.next_line(client), "line two")
        ack = await self.next_event(fake)
        self.assertEqual(ack["event_type"], "ack")
        self.assertEqual(ack["user_message_id"], msg["message_id"])

        lost = mt("127.0.0.1:1", "nobody")
        await transport.handle_outbound(lost)
        self.assertEqual(
            await self.next_line(client), "UNKNOWN ADDR [127.0.0.1:1]: nobody"
        )
        nack = await self.next_event(fake)
        self.assertEqual(nack["event_type"], "nack")
        self.assertEqual(nack["nack_reason"], "Unknown address.")

        client.send_line("/QUIT")
        await within(client.lost)
        close = await self.next_mo(fake)
        self.assertEqual(close["session_event"], "close")
        self.assertEqual(close["from_addr"], from_addr)
        self.assertEqual(transport.client_addresses, [])

    async def test_outbound_close(self) -> None:
        transport, fake = await self.start(to_addr="*120#")
        client = await self.connect(transport)
        new = await self.next_mo(fake)
        self.assertEqual(new["to_addr"], "*120#")
        await transport.handle_outbound(
            mt(new["from_addr"], "goodbye", session_event="close")
        )
        self.assertEqual(await self.next_line(client), "goodbye")
        await within(client.lost)
        close = await self.next_mo(fake)
        self.assertEqual(close["session_event"], "close")
        self.assertEqual((await self.next_event(fake))["event_type"], "ack")

    async def test_negotiation_from_a_telnet_client(self) -> None:
        transport, fake = await self.start()
        client = await self.connect(transport)
        await self.next_mo(fake)
        assert client.transport is not None
        client.transport.write(
            bytes([IAC, WILL, NAWS, IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE])
            + b"typed\r\n"
        )
        resume = await self.next_mo(fake)
        self.assertEqual(resume["content"], "typed")
        while len(client.raw) < 3:
            await within(client.chunks.get())
        self.assertEqual(bytes(client.raw), bytes([IAC, DONT, NAWS]))

    async def test_stop_closes_clients(self) -> None:
        transport, fake = await self.start()
        client = await self.connect(transport)
        await self.next_mo(fake)
        await transport.stop()
        # By the time stop returns the close MO has been published.
        self.assertEqual([m["session_event"] for m in fake.inbound], ["new", "close"])
        await within(client.lost)
        self.assertIsNone(transport.port)
        await transport.stop()

    async def test_addressed_session(self) -> None:
        transport, fake = await self.start(AddressedTelnetTransport)
        client = await self.connect(transport)
        self.assertEqual(await self.next_line(client), 'Please provide "to_addr":')
        client.send_line("*120#")
        self.assertEqual(await self.next_line(client), 'Please provide "from_addr":')
        client.send_line("+27831234567")
        self.assertEqual(
            await self.next_line(client),
            "[Sending all messages to: *120# and from: +27831234567]",
        )
        new = await self.next_mo(fake)
        self.assertEqual(
            (new["session_event"], new["to_addr"], new["from_addr"]),
            ("new", "*120#", "+27831234567"),
        )
        client.send_line("1")
        resume = await self.next_mo(fake)
        self.assertEqual((resume["session_event"], resume["content"]), ("resume", "1"))
        await transport.handle_outbound(mt("+27831234567", "Menu"))
        self.assertEqual(await self.next_line(client), "Menu")
        self.assertEqual((await self.next_event(fake))["event_type"], "ack")
        client.send_line("/quit")
        await within(client.lost)
        close = await self.next_mo(fake)
        self.assertEqual(close["session_event"], "close")
        self.assertEqual(close["from_addr"], "+27831234567")
