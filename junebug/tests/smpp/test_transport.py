"""Tests for SmppTransport against an in-memory SMSC, on a fake clock."""

from __future__ import annotations

from typing import Any

from twisted.internet import error
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from junebug.amqp.lease import DeliveryLease, run_leased
from junebug.errors import DeliveryLost
from junebug.messages import Message, reply_to
from junebug.tests.smpp.helpers import (
    FakeContext,
    PeerEnd,
    accept_connection,
    mt,
    smpp_config,
)
from junebug.transports.smpp.codec import parse_udh
from junebug.transports.smpp.gsm0338 import gsm_encode
from junebug.transports.smpp.pdu import (
    PDU,
    CommandStatus,
    DataSM,
    DeliverSM,
    SubmitSM,
    SubmitSMResp,
    Tag,
    Unbind,
)
from junebug.transports.smpp.transport import (
    SmppTransport,
    SmscUnavailable,
    TransportStopped,
)


class TransportTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.ctx = FakeContext(self.reactor)
        self.next_id = 0

    def make(self, **overrides: Any) -> SmppTransport:
        config = smpp_config(**overrides)
        self.transport = SmppTransport(self.ctx.context, config, jitter=lambda: 0.5)
        self.successResultOf(ensureDeferred(self.transport.start()))
        return self.transport

    def bind(self, peer: PeerEnd | None = None) -> PeerEnd:
        if peer is None:
            peer = accept_connection(self.reactor)
        [bind] = peer.received()
        peer.send(bind.response(system_id="SMSC"))
        return peer

    def started(self, **overrides: Any) -> PeerEnd:
        self.make(**overrides)
        return self.bind()

    def send(self, message: Message) -> Deferred[None]:
        return ensureDeferred(self.transport.handle_outbound(message))

    def submits(self, peer: PeerEnd) -> list[SubmitSM]:
        pdus = peer.received()
        submits = [pdu for pdu in pdus if isinstance(pdu, SubmitSM)]
        self.assertEqual(len(submits), len(pdus), pdus)
        return submits

    def answer(self, peer: PeerEnd, pdus: list[SubmitSM], status: int = 0) -> list[str]:
        ids = []
        for pdu in pdus:
            self.next_id += 1
            smsc_id = f"{self.next_id:x}" if status == 0 else ""
            ids.append(smsc_id)
            peer.send(
                SubmitSMResp(
                    sequence_number=pdu.sequence_number,
                    command_status=status,
                    message_id=smsc_id,
                )
            )
        return ids

    def fail_connection(self) -> None:
        """The latest connection attempt is refused."""
        connector = self.reactor.connectors[-1]
        _, _, factory, _, _ = self.reactor.tcpClients[-1]
        factory.clientConnectionFailed(
            connector, Failure(error.ConnectionRefusedError())
        )

    def receipt(self, smsc_id: str, state: int = 2, **fields: Any) -> DeliverSM:
        return DeliverSM(
            sequence_number=fields.pop("sequence_number", 100),
            esm_class=0x04,
            short_message=fields.pop("short_message", b""),
            tlvs={Tag.RECEIPTED_MESSAGE_ID: smsc_id, Tag.MESSAGE_STATE: state},
            **fields,
        )


class LifecycleTests(TransportTestCase):
    def test_connects_and_binds(self) -> None:
        """start() connects to the endpoint; statuses follow the bind."""
        self.make()
        self.assertEqual(self.reactor.tcpClients[0][:2], ("127.0.0.1", 2775))
        self.assertEqual(self.ctx.status_types(), [("starting", "down")])
        self.assertFalse(self.transport.is_bound)
        self.bind()
        self.assertTrue(self.transport.is_bound)
        self.assertEqual(
            self.ctx.status_types(),
            [("starting", "down"), ("binding", "down"), ("bound", "ok")],
        )
        bound = self.ctx.statuses[-1]
        self.assertEqual(bound["component"], "smpp")
        self.assertEqual(bound["message"], "Successfully bound")
        self.assertEqual(bound["details"]["endpoint"], "tcp:host=127.0.0.1:port=2775")

    def test_reconnect_backoff_is_capped(self) -> None:
        """Refused connections are retried after 1, 2, 4, 8, 8 s."""
        self.make(initial_reconnect_delay=1.0, max_reconnect_delay=8.0)
        attempts = []
        for delay in (1.0, 2.0, 4.0, 8.0, 8.0):
            before = len(self.reactor.tcpClients)
            self.fail_connection()
            self.reactor.advance(delay - 0.01)
            self.assertEqual(len(self.reactor.tcpClients), before)
            self.reactor.advance(0.01)
            self.assertEqual(len(self.reactor.tcpClients), before + 1)
            attempts.append(delay)
        types = self.ctx.status_types()
        self.assertEqual(types, [("starting", "down"), ("connection_lost", "down")])
        self.assertEqual(self.ctx.statuses[-1]["message"], "Could not connect")

    def test_refused_binds_back_off_and_a_bind_resets(self) -> None:
        """A refused bind counts as a failure, so the delay grows; after a
        successful bind a lost connection is retried after the first delay."""
        self.make(initial_reconnect_delay=1.0, max_reconnect_delay=8.0)
        for delay in (1.0, 2.0, 4.0):
            peer = accept_connection(self.reactor)
            [bind] = peer.received()
            peer.send(bind.response(CommandStatus.ESME_RINVPASWD))
            self.assertFalse(peer.connected)
            before = len(self.reactor.tcpClients)
            self.reactor.advance(delay - 0.01)
            self.assertEqual(len(self.reactor.tcpClients), before)
            self.reactor.advance(0.01)
            self.assertEqual(len(self.reactor.tcpClients), before + 1)
        self.assertEqual(self.ctx.status_types()[-1], ("bind_failed", "down"))
        self.assertEqual(
            self.ctx.statuses[-1]["message"], "bind_transceiver_resp ESME_RINVPASWD"
        )
        peer = self.bind()
        peer.drop()
        before = len(self.reactor.tcpClients)
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.tcpClients), before + 1)
        self.assertEqual(self.ctx.status_types()[-1], ("connection_lost", "down"))

    def test_bind_timeout_status(self) -> None:
        self.make(smpp_bind_timeout=5.0)
        accept_connection(self.reactor)
        self.reactor.advance(5.0)
        self.assertIn(("bind_timeout", "down"), self.ctx.status_types())

    def test_stop_unbinds(self) -> None:
        """stop() unbinds, closes and stops reconnecting."""
        peer = self.started()
        stopping = ensureDeferred(self.transport.stop())
        [unbind] = peer.received()
        self.assertIsInstance(unbind, Unbind)
        self.assertNoResult(stopping)
        peer.send(unbind.response())
        self.successResultOf(stopping)
        before = len(self.reactor.tcpClients)
        self.reactor.advance(100)
        self.assertEqual(len(self.reactor.tcpClients), before)
        self.assertNotIn(("connection_lost", "down"), self.ctx.status_types())

    def test_stop_before_bind(self) -> None:
        self.make()
        self.successResultOf(ensureDeferred(self.transport.stop()))
        self.successResultOf(ensureDeferred(self.transport.stop()))

    def test_stop_without_start(self) -> None:
        transport = SmppTransport(self.ctx.context, smpp_config())
        self.successResultOf(ensureDeferred(transport.stop()))


class SubmitTests(TransportTestCase):
    def test_ack_after_submit_sm_resp(self) -> None:
        """handle_outbound returns after the submit_sm_resp, having acked."""
        peer = self.started()
        message = mt("hello world")
        d = self.send(message)
        [submit] = self.submits(peer)
        self.assertEqual(submit.destination_addr, "27820001111")
        self.assertEqual(submit.source_addr, "1234")
        self.assertEqual(submit.data_coding, 0)
        self.assertEqual(submit.short_message, gsm_encode("hello world"))
        self.assertEqual(submit.registered_delivery, 1)
        self.assertEqual((submit.dest_addr_ton, submit.dest_addr_npi), (0, 1))
        self.assertNoResult(d)
        self.assertEqual(self.ctx.events, [])
        self.answer(peer, [submit])
        self.successResultOf(d)
        [event] = self.ctx.events
        self.assertEqual(event["event_type"], "ack")
        self.assertEqual(event["user_message_id"], message["message_id"])
        self.assertEqual(event["sent_message_id"], "1")

    def test_configured_submit_fields(self) -> None:
        peer = self.started(
            service_type="USSD",
            source_addr_ton=5,
            source_addr_npi=0,
            dest_addr_ton=1,
            dest_addr_npi=1,
            registered_delivery=False,
        )
        self.send(mt())
        [submit] = self.submits(peer)
        self.assertEqual(
            (
                submit.service_type,
                submit.source_addr_ton,
                submit.source_addr_npi,
                submit.dest_addr_ton,
                submit.dest_addr_npi,
                submit.registered_delivery,
            ),
            ("USSD", 5, 0, 1, 1, 0),
        )

    def test_error_status_nacks(self) -> None:
        """Any other error nacks with the status name as the reason."""
        peer = self.started()
        message = mt()
        d = self.send(message)
        self.answer(peer, self.submits(peer), CommandStatus.ESME_RINVDSTADR)
        self.successResultOf(d)
        [event] = self.ctx.events
        self.assertEqual(event["event_type"], "nack")
        self.assertEqual(event["nack_reason"], "ESME_RINVDSTADR")
        self.assertEqual(
            event["transport_metadata"],
            {"smpp_command_status": int(CommandStatus.ESME_RINVDSTADR)},
        )

    def test_invalid_addresses_nacked_without_sending(self) -> None:
        peer = self.started()
        for fields, reason in [
            ({"to_addr": "2782ü"}, "Invalid to_addr"),
            ({"to_addr": None}, "Invalid to_addr"),
            ({"from_addr": "x" * 21}, "Invalid from_addr"),
        ]:
            self.successResultOf(self.send(mt(**fields)))
            self.assertIn(reason, self.ctx.events[-1]["nack_reason"])
        self.assertEqual(peer.received(), [])

    def test_unencodable_submit_nacked(self) -> None:
        """A submit_sm the codec refuses is a nack, not an endless requeue."""
        peer = self.started()
        templates = self.transport._encoder.templates

        def broken(message: Message) -> list[dict[str, Any]]:
            return [{**template, "esm_class": 300} for template in templates(message)]

        self.transport._encoder.templates = broken  # type: ignore[method-assign]
        self.successResultOf(self.send(mt()))
        self.assertIn("Cannot encode submit_sm", self.ctx.events[-1]["nack_reason"])
        self.assertEqual(peer.received(), [])

    def test_no_from_addr(self) -> None:
        """Without a from_addr the SMSC's default source is used."""
        peer = self.started()
        self.send(mt(from_addr=None))
        [submit] = self.submits(peer)
        self.assertEqual(submit.source_addr, "")

    def test_disable_ack(self) -> None:
        peer = self.started(disable_ack=True)
        d = self.send(mt())
        self.answer(peer, self.submits(peer))
        self.successResultOf(d)
        self.assertEqual(self.ctx.events, [])

    def test_publish_failure_raises(self) -> None:
        """If the ack cannot be published, the message goes back to the queue."""
        peer = self.started()
        self.ctx.fail_events = True
        d = self.send(mt())
        self.answer(peer, self.submits(peer))
        self.failureResultOf(d, RuntimeError)


class EncodingTests(TransportTestCase):
    def test_gsm_with_extension_table(self) -> None:
        peer = self.started()
        self.send(mt("price: 5€ [ok]"))
        [submit] = self.submits(peer)
        self.assertEqual(submit.data_coding, 0)
        self.assertEqual(submit.short_message, gsm_encode("price: 5€ [ok]"))

    def test_ucs2_when_gsm_cannot_carry_the_text(self) -> None:
        peer = self.started()
        self.send(mt("Привет 👋"))
        [submit] = self.submits(peer)
        self.assertEqual(submit.data_coding, 8)
        self.assertEqual(submit.short_message.decode("utf-16-be"), "Привет 👋")

    def test_latin1_preference(self) -> None:
        peer = self.started(data_coding_preference=[3, 0])
        self.send(mt("café"))
        self.send(mt("Ωmega"))
        latin, gsm = self.submits(peer)
        self.assertEqual((latin.data_coding, latin.short_message), (3, b"caf\xe9"))
        self.assertEqual(gsm.data_coding, 0)

    def test_long_unicode_split_on_characters_with_udh(self) -> None:
        """A long UCS-2 text goes as UDH parts that rebuild it exactly, and the
        message is acked once, with every part's SMSC id."""
        peer = self.started()
        text = "Ж😀" * 100  # surrogate pairs must not be split
        d = self.send(mt(text))
        parts = self.submits(peer)
        self.assertEqual(len(parts), 5)
        pieces = []
        refs = set()
        for index, part in enumerate(parts, 1):
            self.assertEqual(part.esm_class & 0x40, 0x40)
            self.assertEqual(part.data_coding, 8)
            [element], data = parse_udh(part.short_message)
            self.assertEqual(element.iei, 0)
            ref, total, seqnum = element.data
            refs.add(ref)
            self.assertEqual((total, seqnum), (5, index))
            pieces.append(data.decode("utf-16-be"))
        self.assertEqual(len(refs), 1)
        self.assertEqual("".join(pieces), text)
        ids = self.answer(peer, parts)
        self.successResultOf(d)
        [event] = self.ctx.events
        self.assertEqual(event["sent_message_id"], ",".join(ids))

    def test_udh_16_bit_reference(self) -> None:
        peer = self.started(udh_reference_bits=16)
        self.send(mt("x" * 200))
        parts = self.submits(peer)
        [element], _ = parse_udh(parts[0].short_message)
        self.assertEqual(element.iei, 0x08)

    def test_sar(self) -> None:
        peer = self.started(multipart_handling="multipart_sar")
        self.send(mt("y" * 200))
        parts = self.submits(peer)
        self.assertEqual([p.tlv(Tag.SAR_SEGMENT_SEQNUM) for p in parts], [1, 2])
        self.assertEqual({p.tlv(Tag.SAR_TOTAL_SEGMENTS) for p in parts}, {2})
        self.assertEqual(len({p.tlv(Tag.SAR_MSG_REF_NUM) for p in parts}), 1)
        self.assertEqual(parts[0].esm_class, 0)

    def test_send_long_messages_uses_message_payload(self) -> None:
        peer = self.started(send_long_messages=True)
        self.send(mt("z" * 300))
        [submit] = self.submits(peer)
        self.assertEqual(submit.short_message, b"")
        self.assertEqual(submit.tlv(Tag.MESSAGE_PAYLOAD), b"z" * 300)

    def test_short_message_only_nacks_long_text(self) -> None:
        peer = self.started(multipart_handling="short_message")
        self.successResultOf(self.send(mt("z" * 300)))
        self.assertIn("Message too long", self.ctx.events[-1]["nack_reason"])
        self.assertEqual(peer.received(), [])

    def test_rejected_part_nacks_and_stops_the_rest(self) -> None:
        """If a part is refused, the message is nacked and later parts are
        not sent."""
        peer = self.started(window_size=1)
        d = self.send(mt("q" * 400))
        [first] = self.submits(peer)
        self.answer(peer, [first], CommandStatus.ESME_RINVDSTADR)
        self.assertEqual(peer.received(), [])
        self.successResultOf(d)
        self.assertEqual(self.ctx.events[-1]["nack_reason"], "ESME_RINVDSTADR")


class WindowAndRateTests(TransportTestCase):
    def test_window_bounds_outstanding_submits(self) -> None:
        peer = self.started(window_size=2)
        deferreds = [self.send(mt(f"m{n}")) for n in range(5)]
        first = self.submits(peer)
        self.assertEqual(len(first), 2)
        self.answer(peer, first[:1])
        [third] = self.submits(peer)
        self.assertEqual(third.short_message, b"m2")
        self.answer(peer, [*first[1:], third])
        rest = self.submits(peer)
        self.assertEqual(len(rest), 2)
        self.answer(peer, rest)
        for d in deferreds:
            self.successResultOf(d)
        self.assertEqual([e["event_type"] for e in self.ctx.events], ["ack"] * 5)

    def test_mt_tps(self) -> None:
        """mt_tps spaces submit_sm evenly: 4/s is one every 0.25 s."""
        peer = self.started(mt_tps=4, window_size=100)
        for n in range(8):
            self.send(mt(f"m{n}"))
        counts = []
        for _ in range(8):
            counts.append(len(self.submits(peer)))
            self.reactor.advance(0.25)
        self.assertEqual(counts, [1] * 8)

    def test_throttled_then_resubmitted(self) -> None:
        """ESME_RTHROTTLED: wait, send again with a new sequence number, ack
        once accepted; the status goes throttled and back."""
        peer = self.started(throttle_delay=0.5)
        message = mt()
        d = self.send(message)
        [first] = self.submits(peer)
        self.answer(peer, [first], CommandStatus.ESME_RTHROTTLED)
        self.assertEqual(self.ctx.status_types()[-1], ("throttled", "degraded"))
        self.reactor.advance(0.49)
        self.assertEqual(peer.received(), [])
        self.reactor.advance(0.01)
        [again] = self.submits(peer)
        self.assertNotEqual(again.sequence_number, first.sequence_number)
        self.assertEqual(again.short_message, first.short_message)
        self.assertNoResult(d)
        self.answer(peer, [again])
        self.successResultOf(d)
        self.assertEqual(self.ctx.event_types(), [("ack", message["message_id"])])
        self.assertEqual(self.ctx.status_types()[-1], ("throttled_end", "ok"))

    def test_a_throttled_part_of_a_dead_delivery_is_not_sent_again(self) -> None:
        """The broker connection drops while the SMSC throttles: RabbitMQ
        delivers the message again, so the old copy, whose delivery died
        with its channel, gives up instead of being submitted a second time
        (a prefetch window of them used to go out twice)."""
        peer = self.started(throttle_delay=0.5)
        lease = DeliveryLease()
        d = ensureDeferred(run_leased(lease, self.transport.handle_outbound, mt()))
        self.answer(peer, self.submits(peer), CommandStatus.ESME_RTHROTTLED)
        lease.lose()
        self.reactor.advance(0.5)
        self.assertEqual(peer.received(), [])
        self.failureResultOf(d, DeliveryLost)
        self.assertEqual(self.ctx.events, [])
        self.assertEqual(self.ctx.status_types()[-1], ("throttled_end", "ok"))
        # The redelivered copy goes through as usual.
        again = self.send(mt())
        self.answer(peer, self.submits(peer))
        self.successResultOf(again)

    def test_queue_full_is_retried_like_throttling(self) -> None:
        """ESME_RMSGQFUL: the same wait-and-resend, never a nack."""
        peer = self.started(throttle_delay=0.5)
        d = self.send(mt())
        self.answer(peer, self.submits(peer), CommandStatus.ESME_RMSGQFUL)
        self.reactor.advance(0.5)
        self.answer(peer, self.submits(peer))
        self.successResultOf(d)
        self.assertEqual([e["event_type"] for e in self.ctx.events], ["ack"])

    def test_backoff_grows_while_refused(self) -> None:
        peer = self.started(throttle_delay=0.5, max_throttle_delay=1.5)
        d = self.send(mt())
        waits = []
        for _ in range(4):
            self.answer(peer, self.submits(peer), CommandStatus.ESME_RMSGQFUL)
            waited = 0.0
            while not peer.transport.value():
                self.reactor.advance(0.25)
                waited += 0.25
            waits.append(waited)
        self.assertEqual(waits, [0.5, 1.0, 1.5, 1.5])
        self.answer(peer, self.submits(peer))
        self.successResultOf(d)

    def test_throttle_pauses_other_messages(self) -> None:
        peer = self.started(throttle_delay=1.0)
        self.send(mt("a"))
        self.answer(peer, self.submits(peer), CommandStatus.ESME_RTHROTTLED)
        self.send(mt("b"))
        self.assertEqual(peer.received(), [])
        self.reactor.advance(1.0)
        self.assertEqual(len(self.submits(peer)), 2)


class ConnectionLossTests(TransportTestCase):
    def test_waits_for_bind(self) -> None:
        """An MT taken before the bind waits for it."""
        self.make()
        d = self.send(mt())
        peer = accept_connection(self.reactor)
        self.assertNoResult(d)
        self.bind(peer)
        self.answer(peer, self.submits(peer))
        self.successResultOf(d)

    def test_submit_timeout_requeues(self) -> None:
        """No bind within submit_timeout: raise, so the message is requeued."""
        self.make(submit_timeout=5.0)
        d = self.send(mt())
        self.reactor.advance(5.0)
        self.failureResultOf(d, SmscUnavailable)
        self.assertEqual(self.ctx.events, [])

    def test_resubmitted_after_reconnect(self) -> None:
        """If the link drops before the response, the part is sent again
        after the next bind, and acked once."""
        peer = self.started(initial_reconnect_delay=1.0)
        message = mt()
        d = self.send(message)
        [first] = self.submits(peer)
        peer.drop()
        self.assertNoResult(d)
        self.assertEqual(self.ctx.status_types()[-1], ("connection_lost", "down"))
        self.reactor.advance(1.0)
        peer = self.bind()
        [again] = self.submits(peer)
        self.assertEqual(again.short_message, first.short_message)
        self.answer(peer, [again])
        self.successResultOf(d)
        self.assertEqual(self.ctx.event_types(), [("ack", message["message_id"])])

    def test_response_timeout_reconnects_and_resubmits(self) -> None:
        peer = self.started(smpp_response_timeout=5.0, initial_reconnect_delay=1.0)
        d = self.send(mt())
        self.submits(peer)
        self.reactor.advance(5.0)
        self.assertTrue(peer.transport.disconnected)
        self.reactor.advance(1.0)
        peer = self.bind()
        self.answer(peer, self.submits(peer))
        self.successResultOf(d)

    def test_stop_requeues_waiting_messages(self) -> None:
        self.make()
        d = self.send(mt())
        self.successResultOf(ensureDeferred(self.transport.stop()))
        self.failureResultOf(d, TransportStopped)
        self.failureResultOf(self.send(mt()), TransportStopped)

    def test_stop_requeues_messages_in_flight(self) -> None:
        peer = self.started()
        d = self.send(mt())
        self.submits(peer)
        stopping = ensureDeferred(self.transport.stop())
        [unbind] = peer.received()
        peer.send(unbind.response())
        self.successResultOf(stopping)
        self.failureResultOf(d, TransportStopped)


class ReceiptTests(TransportTestCase):
    def submit_and_ack(self, peer: PeerEnd, **fields: Any) -> tuple[Message, str]:
        message = mt(**fields)
        d = self.send(message)
        [smsc_id] = self.answer(peer, self.submits(peer))
        self.successResultOf(d)
        return message, smsc_id

    def store_ttl(self, smsc_id: str) -> int | None:
        key = f"smpp:esme1@chan-1:remote_message:{smsc_id}"
        return self.successResultOf(ensureDeferred(self.ctx.store.ttl(key)))

    def test_receipt_tlvs(self) -> None:
        peer = self.started()
        message, smsc_id = self.submit_and_ack(peer)
        self.assertEqual(self.store_ttl(smsc_id), 604800)
        peer.send(self.receipt(smsc_id, state=2))
        [resp] = peer.received()
        self.assertEqual((resp.sequence_number, resp.command_status), (100, 0))
        event = self.ctx.events[-1]
        self.assertEqual(event["event_type"], "delivery_report")
        self.assertEqual(event["delivery_status"], "delivered")
        self.assertEqual(event["user_message_id"], message["message_id"])
        self.assertEqual(
            event["transport_metadata"], {"smpp_delivery_status": "DELIVERED"}
        )
        self.assertEqual(self.store_ttl(smsc_id), 3600)

    def test_pending_then_final(self) -> None:
        """A pending report leaves the mapping alone; a later final one is
        still correlated."""
        peer = self.started()
        message, smsc_id = self.submit_and_ack(peer)
        peer.send(self.receipt(smsc_id, state=1))
        self.assertEqual(self.store_ttl(smsc_id), 604800)
        peer.send(self.receipt(smsc_id, state=5, sequence_number=101))
        statuses = [e["delivery_status"] for e in self.ctx.events[1:]]
        self.assertEqual(statuses, ["pending", "failed"])
        self.assertEqual(
            {e["user_message_id"] for e in self.ctx.events}, {message["message_id"]}
        )

    def test_text_receipt_without_text_field(self) -> None:
        """A text receipt (no TLVs) whose text: field is missing, as Jasmin
        sends them."""
        peer = self.started()
        message, smsc_id = self.submit_and_ack(peer)
        peer.send(
            DeliverSM(
                sequence_number=7,
                esm_class=0x04,
                short_message=(
                    f"id:{smsc_id} submit date:2611242318 done date:2611242318 "
                    "stat:UNDELIV err:001"
                ).encode(),
            )
        )
        event = self.ctx.events[-1]
        self.assertEqual(event["delivery_status"], "failed")
        self.assertEqual(event["user_message_id"], message["message_id"])
        # The err: field travels on, for the %F of a templated event_url.
        self.assertEqual(
            event["transport_metadata"],
            {"smpp_delivery_status": "UNDELIV", "smpp_error": "001"},
        )

    def test_id_bases(self) -> None:
        """A hex submit_sm_resp id meets its decimal receipt id."""
        peer = self.started(
            submit_sm_resp_id_base="hex", delivery_report_id_base="decimal"
        )
        self.next_id = 25
        message, smsc_id = self.submit_and_ack(peer)
        self.assertEqual(smsc_id, "1a")
        peer.send(self.receipt("26"))
        self.assertEqual(self.ctx.events[-1]["user_message_id"], message["message_id"])

    def test_unknown_id(self) -> None:
        """A receipt for an id nobody knows waits a moment for the mapping,
        then is answered and dropped."""
        peer = self.started()
        peer.send(self.receipt("nope"))
        self.assertEqual(peer.received(), [])
        for _ in range(50):
            self.reactor.advance(0.1)
        [resp] = peer.received()
        self.assertEqual(resp.command_status, 0)
        self.assertEqual(self.ctx.events, [])

    def test_receipt_racing_the_store(self) -> None:
        """A receipt that arrives before the id mapping is written (Redis is
        slow) is still correlated."""
        peer = self.started()
        written: Deferred[None] = Deferred()
        real_set = self.ctx.store.set

        async def slow_set(key: str, value: str, ttl: int | None = None) -> None:
            await written
            await real_set(key, value, ttl)

        self.ctx.store.set = slow_set  # type: ignore[method-assign]
        message = mt()
        d = self.send(message)
        [submit] = self.submits(peer)
        peer.send(SubmitSMResp(sequence_number=submit.sequence_number, message_id="77"))
        peer.send(self.receipt("77"))
        self.assertEqual(
            self.ctx.event_types(), [("delivery_report", message["message_id"])]
        )
        self.assertNoResult(d)
        written.callback(None)
        self.successResultOf(d)

    def test_final_receipt_racing_the_store_shortens_the_mapping(self) -> None:
        """A final receipt that arrives while the id mapping is still being
        written cuts the mapping's life once it is written, as it would have
        had the mapping been there first."""
        peer = self.started()
        written: Deferred[None] = Deferred()
        real_set = self.ctx.store.set

        async def slow_set(key: str, value: str, ttl: int | None = None) -> None:
            await written
            await real_set(key, value, ttl)

        self.ctx.store.set = slow_set  # type: ignore[method-assign]
        d = self.send(mt())
        [submit] = self.submits(peer)
        peer.send(SubmitSMResp(sequence_number=submit.sequence_number, message_id="77"))
        peer.send(self.receipt("77", state=2))
        written.callback(None)
        self.successResultOf(d)
        self.assertEqual(self.store_ttl("77"), 3600)

    def test_disable_delivery_report(self) -> None:
        peer = self.started(disable_delivery_report=True)
        _, smsc_id = self.submit_and_ack(peer)
        peer.send(self.receipt(smsc_id))
        self.assertEqual([e["event_type"] for e in self.ctx.events], ["ack"])

    def test_no_registered_delivery_no_mapping(self) -> None:
        peer = self.started(registered_delivery=False)
        _, smsc_id = self.submit_and_ack(peer)
        self.assertIsNone(self.store_ttl(smsc_id))

    def test_custom_regex_and_mapping(self) -> None:
        peer = self.started(
            delivery_report_regex=r"ref=(?P<id>\w+) state=(?P<stat>\w+)",
            delivery_report_status_mapping={"OKAY": "delivered"},
        )
        message, smsc_id = self.submit_and_ack(peer)
        peer.send(
            DeliverSM(
                sequence_number=9,
                esm_class=0x04,
                short_message=f"ref={smsc_id} state=OKAY".encode(),
            )
        )
        event = self.ctx.events[-1]
        self.assertEqual(event["delivery_status"], "delivered")
        self.assertEqual(event["user_message_id"], message["message_id"])

    def test_unreadable_receipt_is_acked_and_dropped(self) -> None:
        peer = self.started()
        peer.send(
            DeliverSM(sequence_number=9, esm_class=0x04, short_message=b"garbage")
        )
        [resp] = peer.received()
        self.assertEqual(resp.command_status, 0)
        self.assertEqual(self.ctx.inbound, [])


class InboundTests(TransportTestCase):
    def deliver(self, peer: PeerEnd, pdu: PDU) -> PDU:
        peer.send(pdu)
        [resp] = peer.received()
        self.assertEqual(resp.sequence_number, pdu.sequence_number)
        return resp

    def test_sms(self) -> None:
        peer = self.started()
        resp = self.deliver(
            peer,
            DeliverSM(
                sequence_number=3,
                source_addr="27820001111",
                destination_addr="1234",
                short_message=gsm_encode("hi €"),
            ),
        )
        self.assertEqual(resp.command_status, 0)
        [msg] = self.ctx.inbound
        self.assertEqual(
            (msg["from_addr"], msg["to_addr"], msg["content"], msg["transport_type"]),
            ("27820001111", "1234", "hi €", "sms"),
        )
        self.assertIsNone(msg["session_event"])
        self.assertEqual(msg["transport_name"], "chan-1")

    def test_ucs2(self) -> None:
        peer = self.started()
        self.deliver(
            peer,
            DeliverSM(
                sequence_number=3,
                data_coding=8,
                short_message="Ж😀".encode("utf-16-be"),
            ),
        )
        self.assertEqual(self.ctx.inbound[0]["content"], "Ж😀")

    def test_mo_data_coding_override(self) -> None:
        peer = self.started(mo_data_coding_overrides={"0": "utf-8"})
        self.deliver(peer, DeliverSM(sequence_number=3, short_message="é".encode()))
        self.assertEqual(self.ctx.inbound[0]["content"], "é")

    def test_data_sm_with_payload(self) -> None:
        peer = self.started()
        resp = self.deliver(
            peer,
            DataSM(
                sequence_number=4,
                source_addr="1",
                destination_addr="2",
                tlvs={Tag.MESSAGE_PAYLOAD: gsm_encode("x" * 300)},
            ),
        )
        self.assertEqual(resp.command_status, 0)
        self.assertEqual(self.ctx.inbound[0]["content"], "x" * 300)

    def test_undecodable_content(self) -> None:
        """Binary content nobody mapped is refused with the configured error."""
        peer = self.started()
        resp = self.deliver(
            peer, DeliverSM(sequence_number=3, data_coding=4, short_message=b"\x01")
        )
        self.assertEqual(resp.command_status, CommandStatus.ESME_RDELIVERYFAILURE)
        self.assertEqual(self.ctx.inbound, [])

    def test_empty_message(self) -> None:
        peer = self.started()
        resp = self.deliver(peer, DeliverSM(sequence_number=3))
        self.assertEqual(resp.command_status, CommandStatus.ESME_RDELIVERYFAILURE)

    def test_empty_message_allowed(self) -> None:
        peer = self.started(allow_empty_messages=True)
        self.deliver(peer, DeliverSM(sequence_number=3))
        self.assertEqual(self.ctx.inbound[0]["content"], "")

    def test_publish_failure_asks_the_smsc_to_retry(self) -> None:
        peer = self.started()
        self.ctx.fail_inbound = True
        resp = self.deliver(peer, DeliverSM(sequence_number=3, short_message=b"x"))
        self.assertEqual(resp.command_status, CommandStatus.ESME_RX_T_APPN)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def part(self, seq: int, ref: int, total: int, n: int, text: str) -> DeliverSM:
        udh = bytes((5, 0, 3, ref, total, n))
        return DeliverSM(
            sequence_number=seq,
            source_addr="27820001111",
            destination_addr="1234",
            esm_class=0x40,
            data_coding=8,
            short_message=udh + text.encode("utf-16-be"),
        )

    def test_multipart_reassembled(self) -> None:
        """Parts are answered at once and published as one message."""
        peer = self.started()
        self.deliver(peer, self.part(1, 7, 3, 3, "!"))
        self.deliver(peer, self.part(2, 7, 3, 1, "Hello "))
        self.assertEqual(self.ctx.inbound, [])
        self.deliver(peer, self.part(3, 7, 3, 2, "wörld"))
        [msg] = self.ctx.inbound
        self.assertEqual(msg["content"], "Hello wörld!")

    def test_multipart_ttl(self) -> None:
        """Parts older than multipart_reassembly_ttl are dropped."""
        peer = self.started(multipart_reassembly_ttl=60, smpp_enquire_link_interval=600)
        self.deliver(peer, self.part(1, 9, 2, 1, "a"))
        self.reactor.advance(61)
        self.deliver(peer, self.part(2, 9, 2, 2, "b"))
        self.assertEqual(self.ctx.inbound, [])

    def test_multipart_sar(self) -> None:
        peer = self.started()
        for n, text in ((1, b"ab"), (2, b"cd")):
            self.deliver(
                peer,
                DeliverSM(
                    sequence_number=n,
                    short_message=text,
                    tlvs={
                        Tag.SAR_MSG_REF_NUM: 300,
                        Tag.SAR_TOTAL_SEGMENTS: 2,
                        Tag.SAR_SEGMENT_SEQNUM: n,
                    },
                ),
            )
        self.assertEqual(self.ctx.inbound[0]["content"], "abcd")


class UssdTests(TransportTestCase):
    def ussd(
        self, op: int, info: int | None = None, text: bytes = b"*120#"
    ) -> DeliverSM:
        tlvs = {Tag.USSD_SERVICE_OP: op}
        if info is not None:
            tlvs[Tag.ITS_SESSION_INFO] = info
        return DeliverSM(
            sequence_number=5,
            source_addr="27820001111",
            destination_addr="*120#",
            short_message=text,
            tlvs=tlvs,
        )

    def test_session_events(self) -> None:
        peer = self.started()
        for op, info, expected in [
            (0x01, 0x1234, "new"),
            (0x12, 0x1234, "resume"),
            (0x02, None, "resume"),
            (0x11, 0x1234, "close"),
            (0x12, 0x1235, "close"),  # the end-of-session bit
            (0x33, None, "close"),
        ]:
            peer.send(self.ussd(op, info))
            msg = self.ctx.inbound[-1]
            self.assertEqual(msg["session_event"], expected, (op, info))
            self.assertEqual(msg["transport_type"], "ussd")
        self.assertEqual(
            self.ctx.inbound[0]["transport_metadata"],
            {"ussd_service_op": "01", "session_info": "1234"},
        )

    def test_configured_session_events(self) -> None:
        peer = self.started(
            ussd_session_events={"1": "new", "81": "close", "12": "resume"}
        )
        peer.send(self.ussd(0x81))
        self.assertEqual(self.ctx.inbound[-1]["session_event"], "close")

    def test_reply_tlvs(self) -> None:
        """Replies carry ussd_service_op and its_session_info; closing sets the
        end bit and the close op."""
        peer = self.started(ussd_close_service_op="17")
        peer.send(self.ussd(0x01, 0x1234))
        peer.received()
        inbound = self.ctx.inbound[-1]
        self.send(reply_to(inbound, "menu"))
        self.send(reply_to(inbound, "bye", continue_session=False))
        resume, close = self.submits(peer)
        self.assertEqual(resume.destination_addr, "27820001111")
        self.assertEqual(
            (resume.tlv(Tag.USSD_SERVICE_OP), resume.tlv(Tag.ITS_SESSION_INFO)),
            (0x02, 0x1234),
        )
        self.assertEqual(
            (close.tlv(Tag.USSD_SERVICE_OP), close.tlv(Tag.ITS_SESSION_INFO)),
            (0x17, 0x1235),
        )

    def test_sms_has_no_ussd_tlvs(self) -> None:
        peer = self.started()
        self.send(mt())
        [submit] = self.submits(peer)
        self.assertIsNone(submit.tlv(Tag.USSD_SERVICE_OP))
