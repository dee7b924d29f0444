"""The AMQP client protocol (junebug.amqp.client) against a scripted broker:
frames built with junebug.amqp.frames go in through dataReceived, and what
the client writes to a StringTransport is decoded and checked.  Time is a
task.Clock; no sockets, no RabbitMQ."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from junebug.amqp import frames as f
from junebug.amqp.client import (
    AmqpChannel,
    AmqpClient,
    AmqpError,
    ChannelClosedError,
    ConfirmTimeout,
    ConnectionClosedError,
    Delivery,
    PublishRefused,
)
from junebug.amqp.frames import FrameReader, Method

PROPERTIES = f.publish_properties("application/json", 2)


def start(mechanisms: bytes = b"AMQPLAIN PLAIN") -> bytes:
    return f.method(
        0,
        f.CONNECTION_START,
        version_major=0,
        version_minor=9,
        server_properties={"product": "RabbitMQ", "capabilities": {"basic.nack": True}},
        mechanisms=mechanisms,
        locales=b"en_US",
    )


def tune(heartbeat: int = 0, frame_max: int = 131072, channel_max: int = 2047) -> bytes:
    return f.method(
        0,
        f.CONNECTION_TUNE,
        channel_max=channel_max,
        frame_max=frame_max,
        heartbeat=heartbeat,
    )


def content(
    channel: int,
    method_frame: bytes,
    body: bytes,
    chunks: int = 1,
    properties: bytes = PROPERTIES,
) -> bytes:
    """A content method with its header and ``body`` in ``chunks`` frames."""
    header = struct.pack("!HHQ", 60, 0, len(body)) + properties
    out = method_frame + f.frame(f.FRAME_HEADER, channel, header)
    if body:
        step = -(-len(body) // chunks)
        for i in range(0, len(body), step):
            out += f.frame(f.FRAME_BODY, channel, body[i : i + step])
    return out


def deliver(
    channel: int, consumer_tag: str, tag: int, body: bytes, chunks: int = 1
) -> bytes:
    return content(
        channel,
        f.method(
            channel,
            f.BASIC_DELIVER,
            consumer_tag=consumer_tag,
            delivery_tag=tag,
            redelivered=tag % 2 == 0,
            exchange="junebug",
            routing_key="sms.inbound",
        ),
        body,
        chunks,
    )


class NoDelayTransport(StringTransport):
    """A StringTransport that records setTcpNoDelay, as TCP transports have."""

    def __init__(self) -> None:
        super().__init__()
        self.no_delay: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay.append(enabled)


@implementer(ILogObserver)
class LogCapture:
    """Keeps the client's log events (its errors are not failures)."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_namespace") == "junebug.amqp.client":
            self.events.append(event)


class ClientTestCase(TestCase):
    """A client on a StringTransport, with helpers to read what it wrote."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = StringTransport()
        capture = LogCapture()
        self.events = capture.events
        globalLogPublisher.addObserver(capture)
        self.addCleanup(globalLogPublisher.removeObserver, capture)

    def connect(self, **kwargs: Any) -> AmqpClient:
        self.client = AmqpClient(self.clock, **kwargs)
        self.client.makeConnection(self.transport)
        return self.client

    def written(self) -> list[tuple[int, int, bytes]]:
        """The frames written since the last call (the protocol header aside)."""
        data = self.transport.value()
        self.transport.clear()
        if data.startswith(f.PROTOCOL_HEADER):
            data = data[len(f.PROTOCOL_HEADER) :]
        reader = FrameReader(10**7)
        frames = reader.feed(data)
        self.assertEqual(reader._buffer, b"", "a partial frame was written")
        return frames

    def written_methods(self) -> list[tuple[int, Method]]:
        out = []
        for kind, channel, payload in self.written():
            self.assertEqual(kind, f.FRAME_METHOD)
            out.append((channel, f.decode_method(payload)))
        return out

    def feed(self, *data: bytes) -> None:
        self.client.dataReceived(b"".join(data))

    def open_connection(self, server_heartbeat: int = 0, **kwargs: Any) -> AmqpClient:
        """A client through its handshake (``kwargs`` go to AmqpClient)."""
        client = self.connect(**kwargs)
        self.feed(start())
        self.feed(tune(heartbeat=server_heartbeat))
        self.feed(f.method(0, f.CONNECTION_OPEN_OK))
        self.assertIs(self.successResultOf(client.ready), client)
        self.transport.clear()
        return client

    def open_channel(self) -> AmqpChannel:
        d = self.client.channel()
        [(number, m)] = self.written_methods()
        self.assertEqual(m.ids, f.CHANNEL_OPEN)
        self.feed(f.method(number, f.CHANNEL_OPEN_OK))
        channel = self.successResultOf(d)
        self.assertEqual(channel.number, number)
        return channel

    def lose(self, reason: Failure | None = None) -> None:
        self.client.connectionLost(reason or Failure(ConnectionLost("gone")))

    def assert_protocol_error(self, text: str) -> None:
        """The client answered with connection.close 501 and hung up."""
        [(number, m)] = self.written_methods()
        self.assertEqual((number, m.ids), (0, f.CONNECTION_CLOSE))
        self.assertEqual(m["reply_code"], 501)
        self.assertIn(text, m["reply_text"])
        self.assertTrue(self.transport.disconnecting)
        self.assertIn(text, self.client.close_reason or "")
        errors = [e for e in self.events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn(text, str(errors[0]["error"]))


class HandshakeTests(ClientTestCase):
    def test_protocol_header_first(self) -> None:
        self.connect()
        self.assertEqual(self.transport.value(), f.PROTOCOL_HEADER)
        self.assertTrue(self.client.connected)
        self.assertNoResult(self.client.ready)

    def test_no_delay(self) -> None:
        """Nagle is turned off when the transport can."""
        transport = NoDelayTransport()
        self.transport = transport
        self.connect()
        self.assertEqual(transport.no_delay, [True])

    def test_start_ok(self) -> None:
        """PLAIN login with our name and the capabilities RabbitMQ looks for."""
        self.connect(username="user", password="password", connection_name="jb-1")
        self.feed(start())
        [(number, m)] = self.written_methods()
        self.assertEqual((number, m.ids), (0, f.CONNECTION_START_OK))
        self.assertEqual(m["mechanism"], "PLAIN")
        self.assertEqual(m["response"], b"\x00user\x00password")
        self.assertEqual(m["locale"], "en_US")
        properties = m["client_properties"]
        self.assertEqual(properties["connection_name"], "jb-1")
        self.assertEqual(properties["product"], "junebug")
        capabilities = properties["capabilities"]
        self.assertIs(capabilities["publisher_confirms"], True)
        self.assertIs(capabilities["consumer_cancel_notify"], True)
        self.assertIs(capabilities["basic.nack"], True)

    def test_start_one_byte_at_a_time(self) -> None:
        self.connect()
        data = start()
        for i in range(len(data)):
            self.feed(data[i : i + 1])
        [(_, m)] = self.written_methods()
        self.assertEqual(m.ids, f.CONNECTION_START_OK)

    def test_tune_ok_and_open(self) -> None:
        """tune-ok and connection.open go out together, with our vhost."""
        self.connect(vhost="/junebug")
        self.feed(start())
        self.written()
        self.feed(tune(heartbeat=60, frame_max=65536, channel_max=100))
        [(_, tune_ok), (_, open_)] = self.written_methods()
        self.assertEqual(tune_ok.ids, f.CONNECTION_TUNE_OK)
        self.assertEqual(
            tune_ok.args, {"channel_max": 100, "frame_max": 65536, "heartbeat": 60}
        )
        self.assertEqual(open_.ids, f.CONNECTION_OPEN)
        self.assertEqual(open_["virtual_host"], "/junebug")
        self.assertEqual(
            (self.client.channel_max, self.client.frame_max, self.client.heartbeat),
            (100, 65536, 60),
        )
        self.assertNoResult(self.client.ready)
        self.feed(f.method(0, f.CONNECTION_OPEN_OK))
        self.assertIs(self.successResultOf(self.client.ready), self.client)
        self.assertTrue(self.client.opened)

    def test_tune_without_limits(self) -> None:
        """0 from the broker (no limit) becomes our own limits."""
        self.connect()
        self.feed(start(), tune(frame_max=0, channel_max=0))
        [_, (_, tune_ok), _] = self.written_methods()
        self.assertEqual(
            tune_ok.args, {"channel_max": 2047, "frame_max": 131072, "heartbeat": 0}
        )

    def test_channel_max_asked_for_is_negotiated(self) -> None:
        """A lower ``channel_max`` of our own wins over the broker's."""
        self.connect(channel_max=16)
        self.feed(start(), tune(channel_max=2047))
        [_, (_, tune_ok), _] = self.written_methods()
        self.assertEqual(tune_ok["channel_max"], 16)
        self.assertEqual(self.client.channel_max, 16)

    def test_larger_limits_are_capped(self) -> None:
        self.connect()
        self.feed(start(), tune(frame_max=1 << 20, channel_max=65535))
        [_, (_, tune_ok), _] = self.written_methods()
        self.assertEqual((tune_ok["channel_max"], tune_ok["frame_max"]), (2047, 131072))

    def test_our_channel_max_and_frame_max_win_when_lower(self) -> None:
        """channel_max/frame_max (URL options) lower the broker's limits."""
        self.connect(channel_max=10, frame_max=8192)
        self.feed(start(), tune(frame_max=131072, channel_max=2047))
        [_, (_, tune_ok), _] = self.written_methods()
        self.assertEqual((tune_ok["channel_max"], tune_ok["frame_max"]), (10, 8192))
        self.assertEqual((self.client.channel_max, self.client.frame_max), (10, 8192))

    def test_heartbeat_choice(self) -> None:
        """The broker's heartbeat if we have none, ours otherwise (0: off)."""
        for wanted, expected in ((None, 60), (5, 5), (0, 0), (600, 600)):
            self.transport = StringTransport()
            self.connect(heartbeat=wanted)
            self.feed(start(), tune(heartbeat=60))
            [_, (_, tune_ok), _] = self.written_methods()
            self.assertEqual(tune_ok["heartbeat"], expected, wanted)
            self.assertEqual(self.client.heartbeat, expected)

    def test_no_plain(self) -> None:
        self.connect()
        self.feed(start(mechanisms=b"AMQPLAIN EXTERNAL"))
        self.assertEqual(self.written(), [])
        self.assertTrue(self.transport.disconnecting)
        self.assertIn("PLAIN", self.client.close_reason or "")
        ready = self.client.ready
        self.lose()
        error = self.failureResultOf(ready, ConnectionClosedError).value
        self.assertIn("does not offer PLAIN", str(error))

    def test_access_refused(self) -> None:
        """A refused login: close-ok, and ready fails with the broker's reason."""
        self.connect()
        self.feed(start(), tune())
        self.written()
        self.feed(
            f.method(
                0,
                f.CONNECTION_CLOSE,
                reply_code=403,
                reply_text="ACCESS_REFUSED - Login was refused",
                class_id=10,
                method_id=40,
            )
        )
        [(number, m)] = self.written_methods()
        self.assertEqual((number, m.ids), (0, f.CONNECTION_CLOSE_OK))
        self.assertEqual(
            self.client.close_reason, "403 ACCESS_REFUSED - Login was refused"
        )
        self.assertTrue(self.transport.disconnecting)
        ready = self.client.ready
        self.assertNoResult(ready)
        self.lose()
        error = self.failureResultOf(ready, ConnectionClosedError).value
        self.assertEqual(str(error), "403 ACCESS_REFUSED - Login was refused")
        self.assertFalse(self.client.opened)

    def test_protocol_mismatch(self) -> None:
        """A broker answering with a protocol header wants another version."""
        for header in (b"AMQP\x00\x00\x09\x01", b"AMQP\x01\x01\x00\x0a"):
            self.transport = StringTransport()
            self.connect()
            self.feed(header)
            self.assertTrue(self.transport.disconnecting)
            self.assertEqual(self.written(), [])
            self.assertIn(repr(header), self.client.close_reason or "")
            ready = self.client.ready
            self.lose()
            error = self.failureResultOf(ready, ConnectionClosedError).value
            self.assertIn("does not speak AMQP 0-9-1", str(error))

    def test_lost_during_handshake(self) -> None:
        self.connect()
        self.feed(start())
        ready = self.client.ready
        self.lose()
        error = self.failureResultOf(ready, ConnectionClosedError).value
        self.assertEqual(str(error), "connection closed during the handshake")
        self.assertIsNone(self.successResultOf(self.client.lost))

    def test_secure_is_refused(self) -> None:
        self.connect()
        self.feed(start())
        self.written()
        self.feed(f.method(0, f.CONNECTION_SECURE, challenge=b"?"))
        self.assert_protocol_error("only PLAIN")

    def test_bad_timestamp_is_a_protocol_error(self) -> None:
        """A malformed server_properties table gets the 501 close."""
        self.connect()
        properties = b"\x01tT" + struct.pack("!Q", 2**64 - 1)
        payload = (
            struct.pack("!HHBB", 10, 10, 0, 9)
            + struct.pack("!I", len(properties))
            + properties
            + struct.pack("!I", 5)
            + b"PLAIN"
            + struct.pack("!I", 0)
        )
        self.feed(f.frame(f.FRAME_METHOD, 0, payload))
        self.assert_protocol_error("")

    def test_blocked_and_unblocked(self) -> None:
        self.open_connection()
        self.feed(f.method(0, f.CONNECTION_BLOCKED, reason="low on memory"))
        self.assertTrue(self.client.blocked)
        self.assertEqual(self.client.blocked_reason, "low on memory")
        self.feed(f.method(0, f.CONNECTION_UNBLOCKED))
        self.assertFalse(self.client.blocked)
        self.assertEqual(self.written(), [])

    def test_a_lost_connection_is_no_longer_blocked(self) -> None:
        self.open_connection()
        self.feed(f.method(0, f.CONNECTION_BLOCKED, reason="low on memory"))
        self.lose()
        self.assertFalse(self.client.blocked)


class ChannelTests(ClientTestCase):
    def test_channel_before_open(self) -> None:
        self.connect()
        self.failureResultOf(self.client.channel(), ConnectionClosedError)

    def test_open(self) -> None:
        """channel.open goes out; the channel is ours on open-ok."""
        self.open_connection()
        d = self.client.channel()
        [(number, m)] = self.written_methods()
        self.assertEqual((number, m.ids), (1, f.CHANNEL_OPEN))
        self.assertNoResult(d)
        self.feed(f.method(1, f.CHANNEL_OPEN_OK))
        channel = self.successResultOf(d)
        self.assertEqual((channel.number, channel.is_open), (1, True))
        self.assertEqual(self.open_channel().number, 2)

    def test_channel_numbers_stop_at_channel_max(self) -> None:
        client = self.connect()
        self.feed(start(), tune(channel_max=2), f.method(0, f.CONNECTION_OPEN_OK))
        self.written()
        self.open_channel()
        self.open_channel()
        error = self.failureResultOf(client.channel(), AmqpError).value
        self.assertIn("all 2 channels are in use", str(error))

    def test_one_request_on_the_wire_at_a_time(self) -> None:
        """Requests made back to back are written one by one, each once the
        reply to the one before has come, and get their own replies."""
        self.open_connection()
        channel = self.open_channel()
        n = channel.number
        results: list[Any] = []
        channel.exchange_declare("junebug", "topic", durable=True).addCallback(
            results.append
        )
        channel.queue_declare("q1", durable=True, arguments={"x-max-length": 9})
        channel.queue_declare("q2").addCallback(results.append)
        channel.queue_bind("q2", "junebug", "rk").addCallback(results.append)
        channel.basic_qos(50).addCallback(results.append)
        channel.queue_purge("q2").addCallback(results.append)
        channel.queue_delete("q1").addCallback(results.append)
        replies = [
            f.method(n, f.EXCHANGE_DECLARE_OK),
            f.method(n, f.QUEUE_DECLARE_OK, queue="q1", message_count=4),
            f.method(n, f.QUEUE_DECLARE_OK, queue="q2", consumer_count=1),
            f.method(n, f.QUEUE_BIND_OK),
            f.method(n, f.BASIC_QOS_OK),
            f.method(n, f.QUEUE_PURGE_OK, message_count=3),
            f.method(n, f.QUEUE_DELETE_OK, message_count=4),
        ]
        sent: list[Method] = []
        for reply in replies:
            [(number, m)] = self.written_methods()
            self.assertEqual(number, n)
            sent.append(m)
            self.feed(reply)
        self.assertEqual(self.written(), [])
        self.assertEqual(
            [m.name for m in sent],
            [
                "exchange.declare",
                "queue.declare",
                "queue.declare",
                "queue.bind",
                "basic.qos",
                "queue.purge",
                "queue.delete",
            ],
        )
        declare = sent[0]
        self.assertEqual(
            (declare["exchange"], declare["type"], declare["durable"]),
            ("junebug", "topic", True),
        )
        self.assertEqual(sent[1]["arguments"], {"x-max-length": 9})
        self.assertEqual(sent[4]["prefetch_count"], 50)
        self.assertEqual(
            [m.name for m in results],
            [
                "exchange.declare-ok",
                "queue.declare-ok",
                "queue.bind-ok",
                "basic.qos-ok",
                "queue.purge-ok",
                "queue.delete-ok",
            ],
        )
        self.assertEqual((results[1]["queue"], results[1]["consumer_count"]), ("q2", 1))
        self.assertEqual([m["message_count"] for m in results[-2:]], [3, 4])

    def test_consumers_attaching_at_once_to_a_shared_channel(self) -> None:
        """Two consumers' basic.qos and basic.consume asked for back to back
        on one channel.  RabbitMQ answers a basic.consume from the queue's
        process: if the next basic.qos is already on the wire its qos-ok
        overtakes the consume-ok (as it did in a contract test after a
        reconnect: "unexpected basic.qos-ok on channel 6").  With one
        request on the wire at a time there is nothing to overtake."""
        self.open_connection()
        channel = self.open_channel()
        n = channel.number
        asked = [
            channel.basic_qos(10),
            channel.basic_consume("a", lambda d: None, lambda e: None),
            channel.basic_qos(20),
            channel.basic_consume("b", lambda d: None, lambda e: None),
        ]

        def answer(m: Method) -> bytes:
            if m.ids == f.BASIC_QOS:
                return f.method(n, f.BASIC_QOS_OK)
            return f.method(n, f.BASIC_CONSUME_OK, consumer_tag=f"tag-{m['queue']}")

        # A broker as RabbitMQ 3.10: it handles what is on the wire in order,
        # but sends each consume-ok after the replies to what followed it.
        for _ in range(4):
            on_the_wire = [m for _, m in self.written_methods()]
            consume_oks = [answer(m) for m in on_the_wire if m.ids == f.BASIC_CONSUME]
            others = [answer(m) for m in on_the_wire if m.ids != f.BASIC_CONSUME]
            self.feed(*others, *consume_oks)
            self.assertFalse(self.transport.disconnecting, self.client.close_reason)
        self.assertEqual(
            [self.successResultOf(d) for d in asked][1::2], ["tag-a", "tag-b"]
        )
        self.assertEqual(set(channel._consumers), {"tag-a", "tag-b"})

    def test_confirm_mode_starts_when_confirm_select_is_written(self) -> None:
        """A publish written before a queued confirm.select is not one the
        broker will confirm; one written after it is (delivery tag 1)."""
        self.open_connection()
        channel = self.open_channel()
        n = channel.number
        declared = channel.queue_declare("q")
        selected = channel.confirm_select()
        self.written()
        before = channel.publish("", "q", b"before", PROPERTIES)
        self.successResultOf(before)  # not in confirm mode yet
        self.assertEqual(len(self.written()), 3)  # method, header, body
        self.feed(f.method(n, f.QUEUE_DECLARE_OK, queue="q"))
        self.successResultOf(declared)
        [(_, m)] = self.written_methods()
        self.assertEqual(m.ids, f.CONFIRM_SELECT)
        after = channel.publish("", "q", b"after", PROPERTIES)
        self.assertNoResult(after)
        self.feed(f.method(n, f.CONFIRM_SELECT_OK))
        self.successResultOf(selected)
        self.feed(f.method(n, f.BASIC_ACK, delivery_tag=1, multiple=False))
        self.successResultOf(after)

    def test_unexpected_reply(self) -> None:
        """A reply that does not match the oldest request is a protocol error."""
        self.open_connection()
        channel = self.open_channel()
        d = channel.queue_declare("q")
        self.written()
        self.feed(f.method(channel.number, f.QUEUE_BIND_OK))
        self.assert_protocol_error("unexpected queue.bind-ok on channel 1")
        self.lose()
        self.failureResultOf(d, ConnectionClosedError)

    def test_closed_by_the_broker(self) -> None:
        """channel.close fails every request, confirm and consumer, once."""
        self.open_connection()
        channel = self.open_channel()
        n = channel.number
        cancels: list[AmqpError] = []
        channel.basic_consume("q", lambda d: None, cancels.append)
        self.feed(f.method(n, f.BASIC_CONSUME_OK, consumer_tag="ctag"))
        channel.confirm_select()
        self.feed(f.method(n, f.CONFIRM_SELECT_OK))
        published = channel.publish("", "q", b"x", PROPERTIES)
        first = channel.queue_declare("missing", passive=True)
        second = channel.basic_qos(10)
        self.written()
        text = "NOT_FOUND - no queue 'missing' in vhost '/'"
        self.feed(
            f.method(
                n,
                f.CHANNEL_CLOSE,
                reply_code=404,
                reply_text=text,
                class_id=50,
                method_id=10,
            )
        )
        [(number, m)] = self.written_methods()
        self.assertEqual((number, m.ids), (n, f.CHANNEL_CLOSE_OK))
        for d in (first, second, published):
            error = self.failureResultOf(d, ChannelClosedError).value
            self.assertEqual(str(error), f"404 {text}")
            self.assertEqual(error.reply_code, 404)
        # close() on a closed channel sends nothing and gives the reason.
        # (successResultOf(on_closed) would replace its result with None.)
        reason = self.successResultOf(channel.close())
        self.assertIs(self.successResultOf(channel.on_closed), reason)
        self.assertIsInstance(reason, ChannelClosedError)
        self.assertEqual(str(reason), f"404 {text}")
        self.assertEqual(len(cancels), 1)
        self.assertIs(cancels[0], reason)
        self.assertFalse(channel.is_open)
        # Closed for good: nothing more is sent, everything fails at once.
        self.failureResultOf(channel.queue_declare("q"), ChannelClosedError)
        self.failureResultOf(channel.publish("", "q", b"", PROPERTIES))
        channel.basic_ack(1)
        channel.basic_nack(2)
        self.assertEqual(self.written(), [])
        # The connection carries on.
        self.assertTrue(self.client.opened)
        self.assertEqual(self.open_channel().number, n + 1)

    def test_close(self) -> None:
        """Our channel.close: requests fail, late replies are dropped."""
        self.open_connection()
        channel = self.open_channel()
        cancels: list[AmqpError] = []
        channel.basic_consume("q", lambda d: None, cancels.append)
        self.feed(f.method(channel.number, f.BASIC_CONSUME_OK, consumer_tag="c"))
        pending = channel.basic_qos(1)
        self.written()
        done = channel.close()
        [(number, m)] = self.written_methods()
        self.assertEqual((number, m.ids), (channel.number, f.CHANNEL_CLOSE))
        self.assertEqual((m["reply_code"], m["reply_text"]), (200, "OK"))
        self.assertNoResult(done)
        self.failureResultOf(channel.basic_qos(2), ChannelClosedError)
        channel.basic_ack(3)
        channel.basic_nack(3)
        self.assertEqual(self.written(), [])
        # A reply to a request sent before the close is dropped.
        self.feed(f.method(channel.number, f.BASIC_QOS_OK))
        self.assertNoResult(pending)
        self.feed(f.method(channel.number, f.CHANNEL_CLOSE_OK))
        reason = self.successResultOf(done)
        self.assertIsInstance(reason, ChannelClosedError)
        self.failureResultOf(pending, ChannelClosedError)
        self.assertIs(self.successResultOf(channel.on_closed), reason)
        self.assertEqual(len(cancels), 1)
        self.assertEqual(self.written(), [])

    def test_close_crossing_the_brokers_close(self) -> None:
        """Both sides close at once: RabbitMQ answers our channel.close with
        close-ok even after sending its own, and that is no protocol error."""
        self.open_connection()
        channel = self.open_channel()
        n = channel.number
        channel.close()
        self.written()
        self.feed(
            f.method(n, f.CHANNEL_CLOSE, reply_code=406, reply_text="PRECONDITION"),
            f.method(n, f.CHANNEL_CLOSE_OK),
        )
        self.assertEqual(
            [(number, m.name) for number, m in self.written_methods()],
            [(n, "channel.close-ok")],
        )
        self.assertFalse(self.transport.disconnecting)
        self.assertTrue(self.client.opened)

    def test_flow(self) -> None:
        self.open_connection()
        channel = self.open_channel()
        self.feed(f.method(channel.number, f.CHANNEL_FLOW, active=False))
        [(_, m)] = self.written_methods()
        self.assertEqual((m.ids, m["active"]), (f.CHANNEL_FLOW_OK, False))


class ConfirmTests(ClientTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.open_connection()
        self.channel = self.open_channel()
        d = self.channel.confirm_select()
        [(_, m)] = self.written_methods()
        self.assertEqual((m.ids, m["no_wait"]), (f.CONFIRM_SELECT, False))
        self.feed(f.method(self.channel.number, f.CONFIRM_SELECT_OK))
        self.successResultOf(d)

    def publish(self, count: int) -> list[Deferred[None]]:
        return [
            self.channel.publish("junebug", "rk", b"m%d" % i, PROPERTIES)
            for i in range(count)
        ]

    def ack(self, tag: int, multiple: bool, nack: bool = False) -> None:
        ids = f.BASIC_NACK if nack else f.BASIC_ACK
        self.feed(
            f.method(self.channel.number, ids, delivery_tag=tag, multiple=multiple)
        )

    def test_publish_frames(self) -> None:
        d = self.channel.publish("junebug", "sms.outbound", b"hello", PROPERTIES)
        self.assertNoResult(d)
        [method, header, body] = self.written()
        self.assertEqual([k for k, _, _ in (method, header, body)], [1, 2, 3])
        m = f.decode_method(method[2])
        self.assertEqual(
            (m.ids, m["exchange"], m["routing_key"]),
            (f.BASIC_PUBLISH, "junebug", "sms.outbound"),
        )
        size, raw = f.decode_content_header(header[2])
        self.assertEqual(size, 5)
        self.assertEqual(f.decode_properties(raw)["delivery_mode"], 2)
        self.assertEqual(body[2], b"hello")

    def test_ack_multiple(self) -> None:
        """A multiple ack confirms every publish up to its tag."""
        ds = self.publish(4)
        self.ack(3, multiple=True)
        for d in ds[:3]:
            self.assertIsNone(self.successResultOf(d))
        self.assertNoResult(ds[3])

    def test_ack_single(self) -> None:
        """A single ack confirms its tag only; repeats and unknown tags are ignored."""
        ds = self.publish(3)
        self.ack(2, multiple=False)
        self.assertNoResult(ds[0])
        self.successResultOf(ds[1])
        self.assertNoResult(ds[2])
        self.ack(2, multiple=False)  # again: ignored
        self.ack(99, multiple=False)  # unknown: ignored
        self.ack(3, multiple=True)
        self.successResultOf(ds[0])
        self.successResultOf(ds[2])
        self.assertTrue(self.client.opened)

    def test_nack(self) -> None:
        """A nack (single or multiple) fails the publishes with PublishRefused."""
        ds = self.publish(3)
        self.ack(1, multiple=False, nack=True)
        self.failureResultOf(ds[0], PublishRefused)
        self.assertNoResult(ds[1])
        self.ack(3, multiple=True, nack=True)
        self.failureResultOf(ds[1], PublishRefused)
        self.failureResultOf(ds[2], PublishRefused)

    def test_connection_lost(self) -> None:
        """A lost connection fails the unconfirmed publishes."""
        ds = self.publish(2)
        self.ack(1, multiple=False)
        self.lose()
        error = self.failureResultOf(ds[1], ConnectionClosedError).value
        self.assertIn("connection lost: ", str(error))
        self.assertIn("gone", str(error))
        self.assertIsInstance(
            self.successResultOf(self.channel.on_closed), ConnectionClosedError
        )
        self.failureResultOf(self.publish(1)[0], ChannelClosedError)

    def test_without_confirms(self) -> None:
        channel = self.open_channel()
        self.assertIsNone(
            self.successResultOf(channel.publish("", "q", b"", PROPERTIES))
        )
        [method, header] = self.written()
        self.assertEqual((method[0], header[0]), (f.FRAME_METHOD, f.FRAME_HEADER))

    def test_split_at_the_negotiated_frame_max(self) -> None:
        self.transport = StringTransport()
        self.connect()
        self.feed(start(), tune(frame_max=4096), f.method(0, f.CONNECTION_OPEN_OK))
        self.written()
        channel = self.open_channel()
        body = bytes(range(256)) * 40
        channel.publish("", "q", body, PROPERTIES)
        frames = self.written()
        bodies = [p for kind, _, p in frames if kind == f.FRAME_BODY]
        self.assertEqual([len(b) for b in bodies], [4088, 4088, 2064])
        self.assertEqual(b"".join(bodies), body)

    def test_confirm_timeout(self) -> None:
        self.channel.confirm_timeout = 5
        [first] = self.publish(1)
        self.clock.advance(3)
        second, third = self.publish(2)
        self.ack(3, multiple=False)
        self.clock.advance(2)
        error = self.failureResultOf(first, ConfirmTimeout).value
        self.assertIn("after 5s", str(error))
        self.assertNoResult(second)
        self.successResultOf(third)
        self.clock.advance(3)
        self.failureResultOf(second, ConfirmTimeout)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ConsumeTests(ClientTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.open_connection()
        self.channel = self.open_channel()
        self.n = self.channel.number
        self.deliveries: list[Delivery] = []
        self.cancels: list[AmqpError] = []

    def consume(
        self,
        *more: bytes,
        on_delivery: Callable[[Delivery], object] | None = None,
        on_cancel: Callable[[AmqpError], object] | None = None,
    ) -> Deferred[str]:
        """basic.consume, answered with consume-ok and then ``more``."""
        d = self.channel.basic_consume(
            "inbound",
            on_delivery or self.deliveries.append,
            on_cancel or self.cancels.append,
        )
        [(_, m)] = self.written_methods()
        self.assertEqual(
            (m.ids, m["queue"], m["no_ack"]), (f.BASIC_CONSUME, "inbound", False)
        )
        self.feed(f.method(self.n, f.BASIC_CONSUME_OK, consumer_tag="ctag"), *more)
        return d

    def test_delivery(self) -> None:
        """method, header and body make one Delivery for the consumer."""
        self.assertEqual(self.successResultOf(self.consume()), "ctag")
        self.feed(deliver(self.n, "ctag", 6, b'{"content": "hi"}'))
        [d] = self.deliveries
        self.assertEqual(
            (d.delivery_tag, d.redelivered, d.exchange, d.routing_key, d.body),
            (6, True, "junebug", "sms.inbound", b'{"content": "hi"}'),
        )
        self.assertEqual(d.raw_properties, PROPERTIES)
        self.assertEqual(
            d.properties(), {"content_type": "application/json", "delivery_mode": 2}
        )

    def test_body_over_two_frames(self) -> None:
        self.consume()
        data = deliver(self.n, "ctag", 1, b"first half|second half", chunks=2)
        kinds = [kind for kind, _, _ in FrameReader().feed(data)]
        self.assertEqual(kinds, [1, 2, 3, 3])
        self.feed(data)
        [d] = self.deliveries
        self.assertEqual((d.body, d.redelivered), (b"first half|second half", False))

    def test_empty_body(self) -> None:
        self.consume()
        self.feed(deliver(self.n, "ctag", 2, b""))
        [d] = self.deliveries
        self.assertEqual((d.delivery_tag, d.body), (2, b""))

    def test_several_deliveries_byte_at_a_time(self) -> None:
        self.consume()
        data = b"".join(
            deliver(self.n, "ctag", tag, b"body-%d" % tag * tag, chunks=tag)
            for tag in (1, 2, 3)
        )
        for i in range(len(data)):
            self.feed(data[i : i + 1])
        self.assertEqual(
            [(d.delivery_tag, d.body) for d in self.deliveries],
            [(t, b"body-%d" % t * t) for t in (1, 2, 3)],
        )

    def test_delivery_with_the_consume_ok(self) -> None:
        """A message in the same chunk as consume-ok is not lost."""
        d = self.consume(deliver(self.n, "ctag", 1, b"early"))
        self.assertEqual(self.successResultOf(d), "ctag")
        self.assertEqual([x.body for x in self.deliveries], [b"early"])

    def test_failing_callback_is_logged(self) -> None:
        def broken(delivery: Delivery) -> None:
            raise ValueError(delivery.body)

        self.consume(on_delivery=broken)
        self.feed(deliver(self.n, "ctag", 1, b"a"), deliver(self.n, "ctag", 2, b"b"))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 2)
        self.assertTrue(self.client.opened)

    def test_cancelled_by_the_broker(self) -> None:
        self.consume()
        self.feed(f.method(self.n, f.BASIC_CANCEL, consumer_tag="ctag", no_wait=True))
        [reason] = self.cancels
        self.assertIsInstance(reason, AmqpError)
        self.assertEqual(self.written(), [])
        # Late deliveries for it are dropped; the channel stays up.
        self.feed(deliver(self.n, "ctag", 9, b"late"))
        self.assertEqual(self.deliveries, [])
        self.assertTrue(self.channel.is_open)
        self.channel.close()
        self.feed(f.method(self.n, f.CHANNEL_CLOSE_OK))
        self.assertEqual(len(self.cancels), 1)

    def test_failing_cancel_callback(self) -> None:
        """A broken on_cancel is logged, as on_delivery's are, not raised."""

        def broken(reason: AmqpError) -> None:
            raise ValueError(str(reason))

        self.consume(on_cancel=broken)
        acked: list[Method] = []
        self.channel.basic_qos(1).addCallback(acked.append)
        try:
            self.feed(
                f.method(self.n, f.BASIC_CANCEL, consumer_tag="ctag"),
                f.method(self.n, f.BASIC_QOS_OK),
            )
        finally:
            self.flushLoggedErrors(ValueError)
        self.assertEqual(len(acked), 1)

    def test_cancel(self) -> None:
        """Our own basic.cancel: no on_cancel call, then or at close."""
        self.consume()
        d = self.channel.basic_cancel("ctag")
        [(_, m)] = self.written_methods()
        self.assertEqual((m.ids, m["consumer_tag"]), (f.BASIC_CANCEL, "ctag"))
        self.feed(f.method(self.n, f.BASIC_CANCEL_OK, consumer_tag="ctag"))
        self.assertEqual(self.successResultOf(d).ids, f.BASIC_CANCEL_OK)
        self.feed(deliver(self.n, "ctag", 1, b"late"))
        self.assertEqual(self.deliveries, [])
        self.lose()
        self.assertEqual(self.cancels, [])

    def test_get(self) -> None:
        """basic.get: None when empty, the message (in three body frames) if not."""
        empty = self.channel.basic_get("inbound")
        [(_, m)] = self.written_methods()
        self.assertEqual(
            (m.ids, m["queue"], m["no_ack"]), (f.BASIC_GET, "inbound", False)
        )
        self.feed(f.method(self.n, f.BASIC_GET_EMPTY))
        self.assertIsNone(self.successResultOf(empty))
        got = self.channel.basic_get("inbound")
        get_ok = f.method(
            self.n,
            f.BASIC_GET_OK,
            delivery_tag=4,
            redelivered=True,
            exchange="ex",
            routing_key="rk",
            message_count=10,
        )
        data = content(self.n, get_ok, b"payload", chunks=3)
        self.feed(data[:-3])
        self.assertNoResult(got)
        self.feed(data[-3:])
        d = self.successResultOf(got)
        assert d is not None
        self.assertEqual(
            (d.delivery_tag, d.redelivered, d.exchange, d.routing_key, d.body),
            (4, True, "ex", "rk", b"payload"),
        )
        self.assertEqual(d.properties()["content_type"], "application/json")

    def test_get_empty_body(self) -> None:
        got = self.channel.basic_get("q")
        self.feed(
            content(self.n, f.method(self.n, f.BASIC_GET_OK, delivery_tag=1), b"")
        )
        d = self.successResultOf(got)
        assert d is not None
        self.assertEqual(d.body, b"")

    def test_returned_message_is_logged(self) -> None:
        returned = f.method(
            self.n,
            f.BASIC_RETURN,
            reply_code=312,
            reply_text="NO_ROUTE",
            exchange="ex",
            routing_key="nowhere",
        )
        self.feed(content(self.n, returned, b"lost"))
        [event] = [e for e in self.events if e["log_level"] == LogLevel.warn]
        self.assertEqual((event["key"], event["code"]), ("nowhere", 312))
        self.assertTrue(self.channel.is_open)

    def test_ack_and_nack(self) -> None:
        """Acks and nacks for deliveries, with requeue as asked."""
        self.channel.basic_ack(7)
        self.channel.basic_nack(8)
        self.channel.basic_nack(9, requeue=False)
        sent = self.written_methods()
        self.assertEqual({n for n, _ in sent}, {self.n})
        self.assertEqual(
            [(m.ids, m.args) for _, m in sent],
            [
                (f.BASIC_ACK, {"delivery_tag": 7, "multiple": False}),
                (f.BASIC_NACK, {"delivery_tag": 8, "multiple": False, "requeue": True}),
                (
                    f.BASIC_NACK,
                    {"delivery_tag": 9, "multiple": False, "requeue": False},
                ),
            ],
        )

    def test_nothing_written_after_close(self) -> None:
        self.feed(
            f.method(
                self.n,
                f.CHANNEL_CLOSE,
                reply_code=406,
                reply_text="PRECONDITION_FAILED",
            )
        )
        self.written()
        self.channel.basic_ack(1)
        self.channel.basic_nack(2)
        self.assertEqual(self.written(), [])
        self.lose()
        self.channel.basic_ack(3)
        self.assertEqual(self.transport.value(), b"")

    def test_content_out_of_order(self) -> None:
        """A content header with no content method before it is an error."""
        self.feed(f.frame(f.FRAME_HEADER, self.n, struct.pack("!HHQH", 60, 0, 1, 0)))
        self.assert_protocol_error("unexpected content header on channel 1")

    def test_body_longer_than_its_header_said(self) -> None:
        self.consume()
        data = deliver(self.n, "ctag", 1, b"abc")
        self.feed(data[:-11] + f.frame(f.FRAME_BODY, self.n, b"abcd"))
        self.assert_protocol_error("longer than its header said")
        self.assertEqual(self.deliveries, [])


class HeartbeatTests(ClientTestCase):
    def test_heartbeat_when_nothing_was_sent(self) -> None:
        self.open_connection(server_heartbeat=10)
        self.assertEqual(self.client.heartbeat, 10)
        self.clock.advance(5)  # the handshake counts as sent
        self.assertEqual(self.transport.value(), b"")
        self.feed(f.HEARTBEAT_FRAME)
        self.clock.advance(5)
        self.assertEqual(self.transport.value(), f.HEARTBEAT_FRAME)
        self.transport.clear()
        self.feed(f.HEARTBEAT_FRAME)
        self.clock.advance(4)
        self.assertEqual(self.transport.value(), b"")
        # Something else was sent in this half-interval: no heartbeat.
        self.open_channel()
        self.clock.advance(1)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(5)
        self.assertEqual(self.transport.value(), f.HEARTBEAT_FRAME)

    def test_broker_silence_aborts(self) -> None:
        self.open_connection(server_heartbeat=10)
        self.clock.advance(5)  # open-ok was received in this half-interval
        self.clock.pump([5, 5, 5])  # three silent half-intervals
        self.assertFalse(self.transport.disconnecting)
        self.feed(f.HEARTBEAT_FRAME)  # resets the count
        self.clock.advance(5)  # the half-interval with the heartbeat
        self.clock.pump([5, 5, 5])  # three silent ones
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.transport.value().count(f.HEARTBEAT_FRAME), 7)
        self.clock.advance(5)  # the fourth
        self.assertTrue(self.transport.disconnecting)
        self.assertTrue(self.transport.disconnected)  # aborted, not closed
        self.assertEqual(self.client.close_reason, "missed heartbeats from the broker")
        self.lose()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_our_heartbeat_wins(self) -> None:
        self.open_connection(server_heartbeat=60, heartbeat=4)
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 2)

    def test_off(self) -> None:
        self.open_connection(server_heartbeat=60, heartbeat=0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lost_stops_the_timer(self) -> None:
        self.open_connection(server_heartbeat=10)
        self.lose()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class CloseTests(ClientTestCase):
    def test_close(self) -> None:
        """connection.close, then the Deferred fires once the socket is gone."""
        self.open_connection()
        channel = self.open_channel()
        d = self.client.close()
        [(number, m)] = self.written_methods()
        self.assertEqual((number, m.ids), (0, f.CONNECTION_CLOSE))
        self.assertEqual((m["reply_code"], m["reply_text"]), (200, "OK"))
        self.assertNoResult(d)
        self.failureResultOf(self.client.channel(), ConnectionClosedError)
        again = self.client.close()
        self.assertEqual(self.written(), [])  # asked once
        self.feed(f.method(0, f.CONNECTION_CLOSE_OK))
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(d)
        self.client.connectionLost(Failure(ConnectionLost()))
        self.assertIsNone(self.successResultOf(d))
        self.assertIsNone(self.successResultOf(again))
        self.assertIsNone(self.successResultOf(self.client.lost))
        self.assertIsInstance(
            self.successResultOf(channel.on_closed), ConnectionClosedError
        )
        self.assertIsNone(self.successResultOf(self.client.close()))

    def test_close_during_handshake_aborts(self) -> None:
        self.connect()
        self.feed(start())
        self.written()
        d = self.client.close()
        self.assertEqual(self.written(), [])
        self.assertTrue(self.transport.disconnected)
        self.lose()
        self.successResultOf(d)
        self.failureResultOf(self.client.ready, ConnectionClosedError)


class ProtocolErrorTests(ClientTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.open_connection()

    def test_frame_for_a_channel_not_open(self) -> None:
        """A method for an unknown channel: 501 close, logged."""
        self.feed(f.method(5, f.BASIC_ACK, delivery_tag=1))
        self.assert_protocol_error("a frame for channel 5, which is not open")
        self.assertTrue((self.client.close_reason or "").startswith("protocol error: "))
        self.lose()
        self.failureResultOf(self.client.channel(), ConnectionClosedError)

    def test_body_for_a_channel_not_open(self) -> None:
        self.feed(f.frame(f.FRAME_BODY, 3, b"x"))
        self.assert_protocol_error("channel 3, which is not open")

    def test_unknown_frame_type(self) -> None:
        self.feed(f.frame(4, 0, b"?"))
        self.assert_protocol_error("unknown frame type 4")

    def test_bad_frame_end(self) -> None:
        self.feed(f.HEARTBEAT_FRAME[:-1] + b"\x00")
        self.assert_protocol_error("0xCE")

    def test_unexpected_connection_method(self) -> None:
        self.feed(f.method(0, f.CHANNEL_OPEN_OK))
        self.assert_protocol_error("unexpected channel.open-ok on channel 0")

    def test_frames_after_the_error_are_ignored(self) -> None:
        channel = self.open_channel()
        d = channel.basic_qos(1)
        self.written()
        self.feed(f.frame(9, 0, b""), f.method(channel.number, f.BASIC_QOS_OK))
        self.assert_protocol_error("unknown frame type 9")
        self.assertNoResult(d)
        self.lose()
        self.failureResultOf(d, ConnectionClosedError)

    def test_broker_closes_the_connection(self) -> None:
        channel = self.open_channel()
        d = channel.basic_qos(1)
        self.written()
        self.feed(
            f.method(
                0, f.CONNECTION_CLOSE, reply_code=320, reply_text="CONNECTION_FORCED"
            )
        )
        [(_, m)] = self.written_methods()
        self.assertEqual(m.ids, f.CONNECTION_CLOSE_OK)
        self.lose()
        error = self.failureResultOf(d, ConnectionClosedError).value
        self.assertEqual(str(error), "connection lost: 320 CONNECTION_FORCED")
