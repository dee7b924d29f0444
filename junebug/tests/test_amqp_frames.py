"""The AMQP 0-9-1 frame codec (junebug.amqp.frames): methods and field tables
round trip, publish frames split at the negotiated frame size, the frame
reader copes with any chunking, and malformed input is a FrameError."""

from __future__ import annotations

import contextlib
import os
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from junebug.amqp import frames as f
from junebug.amqp.frames import FrameError, FrameReader, Method

EXAMPLES = int(os.environ.get("JUNEBUG_WIRE_FUZZ_EXAMPLES", "200"))


def one_frame(data: bytes, frame_max: int = 131072) -> tuple[int, int, bytes]:
    """The single whole frame in ``data`` (nothing may be left over)."""
    reader = FrameReader(frame_max)
    [result] = reader.feed(data)
    assert reader._buffer == b""
    return result


def round_trip(data: bytes) -> tuple[int, Method]:
    """The channel and decoded method of one method frame."""
    kind, channel, payload = one_frame(data)
    assert kind == f.FRAME_METHOD
    return channel, f.decode_method(payload)


def shortstr(raw: bytes) -> bytes:
    return bytes((len(raw),)) + raw


def longstr(raw: bytes) -> bytes:
    return struct.pack("!I", len(raw)) + raw


def table(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("!I", len(body)) + body


def entry(key: bytes, tag: bytes, raw: bytes) -> bytes:
    return shortstr(key) + tag + raw


def start_payload(server_properties: bytes) -> bytes:
    """A connection.start payload with a hand-built server_properties table."""
    return (
        struct.pack("!HHBB", 10, 10, 0, 9)
        + server_properties
        + longstr(b"PLAIN AMQPLAIN")
        + longstr(b"en_US")
    )


class MethodTests(SynchronousTestCase):
    def test_queue_declare_with_arguments(self) -> None:
        """queue.declare keeps its name, its bits and its arguments table."""
        arguments = {"x-queue-type": "quorum", "x-max-length": 10_000}
        channel, m = round_trip(
            f.method(
                7,
                f.QUEUE_DECLARE,
                queue="junebug.inbound",
                durable=True,
                auto_delete=True,
                arguments=arguments,
            )
        )
        self.assertEqual(channel, 7)
        self.assertEqual(m.ids, f.QUEUE_DECLARE)
        self.assertEqual(m.name, "queue.declare")
        self.assertEqual(
            m.args,
            {
                "reserved_1": 0,
                "queue": "junebug.inbound",
                "passive": False,
                "durable": True,
                "exclusive": False,
                "auto_delete": True,
                "no_wait": False,
                "arguments": arguments,
            },
        )
        self.assertEqual(m["queue"], "junebug.inbound")
        self.assertIn("queue.declare", repr(m))

    def test_basic_nack_two_bits(self) -> None:
        """Both of basic.nack's bits survive, in every combination."""
        for multiple in (False, True):
            for requeue in (False, True):
                _, m = round_trip(
                    f.method(
                        1,
                        f.BASIC_NACK,
                        delivery_tag=2**40 + 3,
                        multiple=multiple,
                        requeue=requeue,
                    )
                )
                self.assertEqual(
                    m.args,
                    {
                        "delivery_tag": 2**40 + 3,
                        "multiple": multiple,
                        "requeue": requeue,
                    },
                )

    def test_basic_nack_bytes(self) -> None:
        """The two bits share one octet, multiple in bit 0, requeue in bit 1."""
        self.assertEqual(
            f.method(2, f.BASIC_NACK, delivery_tag=9, requeue=True),
            b"\x01\x00\x02\x00\x00\x00\x0d\x00\x3c\x00\x78"
            + struct.pack("!Q", 9)
            + b"\x02\xce",
        )

    def test_five_bits_in_every_combination(self) -> None:
        """exchange.declare's five consecutive bits pack into one octet."""
        names = ("passive", "durable", "auto_delete", "internal", "no_wait")
        for n in range(32):
            bits = {name: bool(n & (1 << i)) for i, name in enumerate(names)}
            _, m = round_trip(
                f.method(1, f.EXCHANGE_DECLARE, exchange="x", type="topic", **bits)
            )
            self.assertEqual({k: m[k] for k in names}, bits)
            self.assertEqual((m["exchange"], m["type"]), ("x", "topic"))
            self.assertEqual(m["arguments"], {})

    def test_connection_tune(self) -> None:
        channel, m = round_trip(
            f.method(
                0, f.CONNECTION_TUNE, channel_max=2047, frame_max=131072, heartbeat=60
            )
        )
        self.assertEqual(channel, 0)
        self.assertEqual(m.name, "connection.tune")
        self.assertEqual(
            m.args, {"channel_max": 2047, "frame_max": 131072, "heartbeat": 60}
        )

    def test_basic_deliver(self) -> None:
        _, m = round_trip(
            f.method(
                3,
                f.BASIC_DELIVER,
                consumer_tag="amq.ctag-1",
                delivery_tag=2**64 - 1,
                redelivered=True,
                exchange="junebug",
                routing_key="channel.inbound",
            )
        )
        self.assertEqual(
            m.args,
            {
                "consumer_tag": "amq.ctag-1",
                "delivery_tag": 2**64 - 1,
                "redelivered": True,
                "exchange": "junebug",
                "routing_key": "channel.inbound",
            },
        )

    def test_arguments_left_out(self) -> None:
        """Missing arguments are 0, "", false, b"" or the empty table."""
        _, m = round_trip(f.method(0, f.CONNECTION_START))
        self.assertEqual(
            m.args,
            {
                "version_major": 0,
                "version_minor": 0,
                "server_properties": {},
                "mechanisms": b"",
                "locales": b"",
            },
        )

    def test_method_without_arguments(self) -> None:
        self.assertEqual(
            f.method(0, f.CONNECTION_CLOSE_OK),
            b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x33\xce",
        )
        _, m = round_trip(f.method(5, f.CHANNEL_CLOSE_OK))
        self.assertEqual((m.name, m.args), ("channel.close-ok", {}))

    def test_utf8_short_strings(self) -> None:
        _, m = round_trip(f.method(1, f.QUEUE_DELETE, queue="fila-ção"))
        self.assertEqual(m["queue"], "fila-ção")

    def test_short_string_too_long(self) -> None:
        with self.assertRaises(ValueError):
            f.method(1, f.QUEUE_DECLARE, queue="q" * 256)
        _, m = round_trip(f.method(1, f.QUEUE_DECLARE, queue="q" * 255))
        self.assertEqual(m["queue"], "q" * 255)

    def test_heartbeat_frame(self) -> None:
        self.assertEqual(one_frame(f.HEARTBEAT_FRAME), (f.FRAME_HEARTBEAT, 0, b""))
        self.assertEqual(f.frame(f.FRAME_HEARTBEAT, 0, b""), f.HEARTBEAT_FRAME)


class TableTests(SynchronousTestCase):
    def decode_start_ok(self, client_properties: dict[str, Any]) -> dict[str, Any]:
        """client_properties after a trip through connection.start-ok."""
        _, m = round_trip(
            f.method(
                0,
                f.CONNECTION_START_OK,
                client_properties=client_properties,
                mechanism="PLAIN",
                response=b"\x00u\x00p",
                locale="en_US",
            )
        )
        self.assertEqual(m["mechanism"], "PLAIN")
        self.assertEqual(m["response"], b"\x00u\x00p")
        self.assertEqual(m["locale"], "en_US")
        result: dict[str, Any] = m["client_properties"]
        return result

    def test_each_type_round_trips(self) -> None:
        properties = {
            "yes": True,
            "no": False,
            "zero": 0,
            "small": -5,
            "max32": 2**31 - 1,
            "min32": -(2**31),
            "above32": 2**31,
            "below32": -(2**31) - 1,
            "huge": 2**62,
            "float": 3.25,
            "text": "héllo",
            "empty": "",
            "raw": b"\x00\xff",
            "nested": {"capabilities": {"publisher_confirms": True}, "n": 1},
            "empty_table": {},
            "list": [1, "two", None, [True, 2**40], {"k": "v"}],
            "none": None,
        }
        self.assertEqual(self.decode_start_ok(properties), properties)

    def test_tuple_is_an_array(self) -> None:
        self.assertEqual(self.decode_start_ok({"t": (1, "a")}), {"t": [1, "a"]})

    def test_integer_width_on_the_wire(self) -> None:
        """Ints that fit 32 signed bits are 'I', larger ones 'l'."""
        self.assertEqual(
            f.encode_table({"a": 2**31 - 1}),
            table(entry(b"a", b"I", b"\x7f\xff\xff\xff")),
        )
        self.assertEqual(
            f.encode_table({"a": 2**31}),
            table(entry(b"a", b"l", struct.pack("!q", 2**31))),
        )
        self.assertEqual(
            f.encode_table({"a": -(2**31) - 1}),
            table(entry(b"a", b"l", struct.pack("!q", -(2**31) - 1))),
        )
        self.assertEqual(f.encode_table({"b": True}), table(entry(b"b", b"t", b"\x01")))

    def test_empty_tables(self) -> None:
        self.assertEqual(f.encode_table(None), b"\x00\x00\x00\x00")
        self.assertEqual(f.encode_table({}), b"\x00\x00\x00\x00")

    def test_unsupported_type(self) -> None:
        with self.assertRaises(TypeError):
            f.encode_table({"when": datetime(2024, 1, 1, tzinfo=UTC)})

    def test_types_rabbitmq_sends(self) -> None:
        """The field types we never write but may read, built by hand."""
        properties = table(
            entry(b"b", b"b", struct.pack("!b", -3)),
            entry(b"B", b"B", struct.pack("!B", 250)),
            entry(b"s", b"s", struct.pack("!h", -300)),
            entry(b"u", b"u", struct.pack("!H", 65000)),
            entry(b"i", b"i", struct.pack("!I", 4_000_000_000)),
            entry(b"L", b"L", struct.pack("!Q", 2**64 - 1)),
            entry(b"f", b"f", struct.pack("!f", 1.5)),
            entry(b"D", b"D", struct.pack("!Bi", 2, 12345)),
            entry(b"D-", b"D", struct.pack("!Bi", 1, -5)),
            entry(b"T", b"T", struct.pack("!Q", 1_700_000_000)),
            entry(b"x", b"x", longstr(b"\x01\x02")),
            entry(b"S", b"S", longstr("ünï".encode())),
            entry(b"A", b"A", struct.pack("!I", 3) + b"B\x07V"),
            entry(b"F", b"F", table(entry(b"t", b"t", b"\x00"))),
        )
        m = f.decode_method(start_payload(properties))
        self.assertEqual(m.name, "connection.start")
        self.assertEqual((m["version_major"], m["version_minor"]), (0, 9))
        self.assertEqual(m["mechanisms"], b"PLAIN AMQPLAIN")
        self.assertEqual(m["locales"], b"en_US")
        self.assertEqual(
            m["server_properties"],
            {
                "b": -3,
                "B": 250,
                "s": -300,
                "u": 65000,
                "i": 4_000_000_000,
                "L": 2**64 - 1,
                "f": 1.5,
                "D": Decimal("123.45"),
                "D-": Decimal("-0.5"),
                "T": datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
                "x": b"\x01\x02",
                "S": "ünï",
                "A": [7, None],
                "F": {"t": False},
            },
        )

    def test_unknown_field_type(self) -> None:
        with self.assertRaisesRegex(FrameError, "unknown field type"):
            f.decode_method(start_payload(table(entry(b"k", b"Z", b""))))

    def test_table_longer_than_the_frame(self) -> None:
        properties = struct.pack("!I", 1000) + entry(b"k", b"V", b"")
        with self.assertRaises(FrameError):
            f.decode_method(start_payload(properties))

    def test_entry_overruns_the_table(self) -> None:
        """A table whose last entry runs past its stated size."""
        body = entry(b"k", b"I", struct.pack("!i", 1))
        properties = struct.pack("!I", len(body) - 2) + body
        with self.assertRaisesRegex(FrameError, "overrun"):
            f.decode_method(start_payload(properties))

    def test_array_overruns(self) -> None:
        items = b"I" + struct.pack("!i", 1)
        bad = entry(b"a", b"A", struct.pack("!I", 2) + items)
        with self.assertRaisesRegex(FrameError, "overrun"):
            f.decode_method(start_payload(table(bad)))
        too_long = entry(b"a", b"A", struct.pack("!I", 10_000) + items)
        with self.assertRaises(FrameError):
            f.decode_method(start_payload(table(too_long)))

    def test_timestamp_out_of_range_is_a_frame_error(self) -> None:
        """A 'T' field beyond year 9999 is malformed input, so a FrameError."""
        for seconds in (253402300800, 2**63, 2**64 - 1):
            properties = table(entry(b"T", b"T", struct.pack("!Q", seconds)))
            with self.assertRaises(FrameError):
                f.decode_method(start_payload(properties))

    def test_deeply_nested_tables_are_a_frame_error(self) -> None:
        """A few kilobytes of nested tables must not raise RecursionError."""
        inner = b"\x00\x00\x00\x00"
        for _ in range(5000):
            inner = table(entry(b"", b"F", inner))
        self.assertLess(len(inner), 131072 - 100)
        with self.assertRaises(FrameError):
            f.decode_method(start_payload(inner))


class PublishFramesTests(SynchronousTestCase):
    FRAME_MAX = 4096
    LIMIT = FRAME_MAX - 8
    PROPERTIES = f.publish_properties("application/json", 2)

    def split(self, body: bytes, channel: int = 3) -> list[tuple[int, int, bytes]]:
        data = f.publish_frames(
            channel,
            f.publish_method_payload("junebug", "sms.outbound"),
            self.PROPERTIES,
            body,
            self.FRAME_MAX,
        )
        reader = FrameReader(self.FRAME_MAX)
        frames = reader.feed(data)
        self.assertEqual(reader._buffer, b"")
        self.assertTrue(all(ch == channel for _, ch, _ in frames))
        method, header = frames[0], frames[1]
        self.assertEqual(method[0], f.FRAME_METHOD)
        m = f.decode_method(method[2])
        self.assertEqual(
            m.args,
            {
                "reserved_1": 0,
                "exchange": "junebug",
                "routing_key": "sms.outbound",
                "mandatory": False,
                "immediate": False,
            },
        )
        self.assertEqual(header[0], f.FRAME_HEADER)
        self.assertEqual(header[2][:4], b"\x00\x3c\x00\x00")  # basic, weight 0
        size, raw = f.decode_content_header(header[2])
        self.assertEqual(size, len(body))
        self.assertEqual(
            f.decode_properties(raw),
            {"content_type": "application/json", "delivery_mode": 2},
        )
        bodies = frames[2:]
        self.assertTrue(all(kind == f.FRAME_BODY for kind, _, _ in bodies))
        self.assertTrue(
            all(len(payload) + 8 <= self.FRAME_MAX for *_, payload in bodies)
        )
        self.assertEqual(b"".join(payload for *_, payload in bodies), body)
        return bodies

    def test_empty_body_has_no_body_frame(self) -> None:
        self.assertEqual(self.split(b""), [])

    def test_below_the_limit(self) -> None:
        self.assertEqual(len(self.split(b"a" * (self.LIMIT - 1))), 1)

    def test_exactly_at_the_limit(self) -> None:
        [(_, _, payload)] = self.split(b"b" * self.LIMIT)
        self.assertEqual(len(payload), self.LIMIT)

    def test_one_byte_above_the_limit(self) -> None:
        bodies = self.split(b"c" * self.LIMIT + b"d")
        self.assertEqual([len(p) for *_, p in bodies], [self.LIMIT, 1])

    def test_several_body_frames(self) -> None:
        body = os.urandom(3 * self.LIMIT + 5)
        bodies = self.split(body)
        self.assertEqual(
            [len(p) for *_, p in bodies], [self.LIMIT, self.LIMIT, self.LIMIT, 5]
        )

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.integers(16, 64), st.binary(max_size=300))
    def test_any_size_and_frame_max(self, frame_max: int, body: bytes) -> None:
        """However small frame_max is, the body frames fit and rebuild the body."""
        data = f.publish_frames(1, b"\x00\x3c\x00\x28", b"\x00\x00", body, frame_max)
        frames = FrameReader(10**6).feed(data)
        bodies = [payload for kind, _, payload in frames if kind == f.FRAME_BODY]
        limit = frame_max - 8
        self.assertEqual(len(bodies), -(-len(body) // limit))
        self.assertTrue(all(0 < len(b) <= limit for b in bodies))
        self.assertEqual(b"".join(bodies), body)

    def test_every_property(self) -> None:
        """Properties decode in flag order (bit 15 first), skipping absent ones."""
        flags = (1 << 15) | (1 << 13) | (1 << 12) | (1 << 11) | (1 << 10) | (1 << 6)
        flags |= 1 << 4 | 1 << 3
        raw = (
            struct.pack("!H", flags)
            + shortstr(b"text/plain")
            + table(entry(b"h", b"S", longstr(b"v")))
            + b"\x01"
            + b"\x05"
            + shortstr(b"corr-1")
            + struct.pack("!Q", 1_700_000_000)
            + shortstr(b"guest")
            + shortstr(b"junebug")
        )
        self.assertEqual(
            f.decode_properties(raw),
            {
                "content_type": "text/plain",
                "headers": {"h": "v"},
                "delivery_mode": 1,
                "priority": 5,
                "correlation_id": "corr-1",
                "timestamp": 1_700_000_000,
                "user_id": "guest",
                "app_id": "junebug",
            },
        )
        self.assertEqual(f.decode_properties(b"\x00\x00"), {})

    def test_truncated_properties(self) -> None:
        raw = self.PROPERTIES
        for cut in range(len(raw)):
            with self.assertRaises(FrameError):
                f.decode_properties(raw[:cut])

    def test_short_content_header(self) -> None:
        with self.assertRaises(FrameError):
            f.decode_content_header(b"\x00\x3c\x00\x00" + b"\x00" * 7)


def frames_strategy() -> st.SearchStrategy[list[tuple[int, int, bytes]]]:
    return st.lists(
        st.tuples(
            st.sampled_from([f.FRAME_METHOD, f.FRAME_HEADER, f.FRAME_BODY, 8]),
            st.integers(0, 65535),
            st.binary(max_size=40),
        ),
        min_size=1,
        max_size=6,
    )


def cuts(data: bytes) -> st.SearchStrategy[list[bytes]]:
    return st.lists(st.integers(0, len(data)), max_size=8).map(
        lambda points: [
            data[a:b]
            for a, b in zip(
                [0, *sorted(points)], [*sorted(points), len(data)], strict=True
            )
            if b > a
        ]
    )


class FrameReaderTests(SynchronousTestCase):
    @settings(max_examples=EXAMPLES, deadline=None)
    @given(frames_strategy(), st.data())
    def test_any_chunking(
        self, expected: list[tuple[int, int, bytes]], data: st.DataObject
    ) -> None:
        """However the stream is cut, the same frames come out, in order."""
        stream = b"".join(f.frame(*fr) for fr in expected)
        reader = FrameReader()
        got: list[tuple[int, int, bytes]] = []
        for chunk in data.draw(cuts(stream)):
            got += reader.feed(chunk)
        self.assertEqual(got, expected)
        self.assertEqual(reader._buffer, b"")

    def test_byte_at_a_time(self) -> None:
        stream = f.method(0, f.CONNECTION_TUNE, heartbeat=5) + f.HEARTBEAT_FRAME
        reader = FrameReader()
        got = []
        for i in range(len(stream)):
            got += reader.feed(stream[i : i + 1])
            if i < len(stream) - 9:
                self.assertEqual(got, [])
        self.assertEqual([kind for kind, _, _ in got], [1, 8])
        self.assertEqual(f.decode_method(got[0][2])["heartbeat"], 5)

    def test_partial_frame_waits(self) -> None:
        data = f.frame(f.FRAME_BODY, 1, b"hello")
        reader = FrameReader()
        self.assertEqual(reader.feed(data[:-1]), [])
        self.assertEqual(reader.feed(data[-1:]), [(f.FRAME_BODY, 1, b"hello")])

    def test_frame_not_ending_in_ce(self) -> None:
        data = f.frame(f.FRAME_BODY, 1, b"hello")[:-1] + b"\x00"
        with self.assertRaisesRegex(FrameError, "0xCE"):
            FrameReader().feed(data)

    def test_frame_end_checked_across_chunks(self) -> None:
        data = f.frame(f.FRAME_BODY, 1, b"hello")[:-1] + b"\xcf"
        reader = FrameReader()
        self.assertEqual(reader.feed(data[:-1]), [])
        with self.assertRaises(FrameError):
            reader.feed(data[-1:])

    def test_frame_larger_than_frame_max(self) -> None:
        """Rejected from its header alone, before its payload arrives."""
        reader = FrameReader(4096)
        header = struct.pack("!BHI", f.FRAME_BODY, 1, 4097)
        with self.assertRaisesRegex(FrameError, "4097"):
            reader.feed(header + b"x")

    def test_frame_of_exactly_frame_max(self) -> None:
        """A frame of frame_max bytes (header and end octet included) is fine."""
        data = f.frame(f.FRAME_BODY, 1, b"x" * (4096 - 8))
        self.assertEqual(len(data), 4096)
        self.assertEqual(len(FrameReader(4096).feed(data)), 1)

    def test_frame_one_byte_over_frame_max(self) -> None:
        """frame-max counts the whole frame, as RabbitMQ checks it."""
        data = f.frame(f.FRAME_BODY, 1, b"x" * (4096 - 7))
        self.assertEqual(len(data), 4097)
        with self.assertRaises(FrameError):
            FrameReader(4096).feed(data)


methods = sorted(f.METHODS)


class MalformedMethodTests(SynchronousTestCase):
    def test_shorter_than_its_ids(self) -> None:
        for payload in (b"", b"\x00", b"\x00\x0a\x00"):
            with self.assertRaises(FrameError):
                f.decode_method(payload)

    def test_unknown_method(self) -> None:
        with self.assertRaisesRegex(FrameError, "unknown method 60.99"):
            f.decode_method(struct.pack("!HH", 60, 99))

    def test_every_truncation(self) -> None:
        """Cutting a method payload anywhere before its end is a FrameError."""
        samples = [
            f.method(
                1, f.QUEUE_DECLARE, queue="q", arguments={"x-max-length": 5, "l": [1]}
            ),
            f.method(0, f.CONNECTION_TUNE, channel_max=1, frame_max=2, heartbeat=3),
            f.method(1, f.BASIC_DELIVER, consumer_tag="c", exchange="e"),
            f.method(1, f.BASIC_NACK, delivery_tag=1),
        ]
        for data in samples:
            _, _, payload = one_frame(data)
            f.decode_method(payload)
            for cut in range(len(payload)):
                with self.assertRaises(FrameError):
                    f.decode_method(payload[:cut])

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.binary(max_size=80))
    def test_random_bytes(self, payload: bytes) -> None:
        """Garbage decodes or raises FrameError, never anything else."""
        with contextlib.suppress(FrameError):
            f.decode_method(payload)

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.sampled_from(methods), st.binary(max_size=80))
    def test_random_arguments(self, ids: tuple[int, int], tail: bytes) -> None:
        """Known method ids followed by garbage: a Method or a FrameError."""
        try:
            m = f.decode_method(struct.pack("!HH", *ids) + tail)
        except FrameError:
            return
        self.assertEqual(m.ids, ids)

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.binary(max_size=200))
    def test_random_stream(self, data: bytes) -> None:
        """The reader and decoder together never raise anything but FrameError."""
        try:
            for kind, _, payload in FrameReader(64).feed(data):
                if kind == f.FRAME_METHOD:
                    f.decode_method(payload)
        except FrameError:
            pass

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.binary(max_size=40))
    def test_random_properties(self, raw: bytes) -> None:
        with contextlib.suppress(FrameError):
            f.decode_properties(raw)


class PublishPropertiesTests(SynchronousTestCase):
    def test_expiration_is_encoded_in_flag_order(self) -> None:
        raw = f.publish_properties("application/json", 2, "1500")
        self.assertEqual(
            f.decode_properties(raw),
            {
                "content_type": "application/json",
                "delivery_mode": 2,
                "expiration": "1500",
            },
        )
        self.assertEqual(
            f.decode_properties(f.publish_properties("application/json", 2)),
            {"content_type": "application/json", "delivery_mode": 2},
        )
