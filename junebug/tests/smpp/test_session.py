"""Tests for the ESME session machine and its framing protocol."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from junebug.tests.smpp.helpers import PeerEnd, RecordingOwner, open_connection
from junebug.transports.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    CommandId,
    CommandStatus,
    DataSM,
    DeliverSM,
    DeliverSMResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    QuerySM,
    SubmitSM,
    SubmitSMResp,
    Unbind,
    UnbindResp,
    encode_pdu,
)
from junebug.transports.smpp.protocol import SmppProtocol
from junebug.transports.smpp.sequencing import MAX_SEQUENCE_NUMBER, SequenceGenerator
from junebug.transports.smpp.session import (
    MalformedResponse,
    NotBound,
    ResponseTimeout,
    SessionClosed,
    SessionSettings,
    SmppSession,
)


def settings(**overrides: Any) -> SessionSettings:
    values: dict[str, Any] = {
        "bind_class": BindTransceiver,
        "system_id": "esme1",
        "password": "secret",
        "bind_timeout": 30.0,
        "enquire_link_interval": 55.0,
        "response_timeout": 10.0,
        "unbind_timeout": 2.0,
    }
    values.update(overrides)
    return SessionSettings(**values)


def submit(session: SmppSession) -> SubmitSM:
    return SubmitSM(
        sequence_number=session.next_sequence_number(),
        destination_addr="27820001111",
        short_message=b"hi",
    )


class SessionTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.owner = RecordingOwner()

    def connect(self, **overrides: Any) -> tuple[SmppSession, PeerEnd]:
        sequence = overrides.pop("sequence", None)
        session = SmppSession(settings(**overrides), self.clock, self.owner, sequence)
        peer = open_connection(SmppProtocol(session))
        return session, peer

    def bind(self, **overrides: Any) -> tuple[SmppSession, PeerEnd]:
        session, peer = self.connect(**overrides)
        [bind] = peer.received()
        peer.send(bind.response(system_id="SMSC"))
        self.assertTrue(session.is_bound)
        return session, peer


class BindTests(SessionTestCase):
    def test_binds_on_connect(self) -> None:
        """The bind PDU carries every configured bind parameter."""
        session, peer = self.connect(
            system_type="VMA",
            interface_version=0x34,
            addr_ton=1,
            addr_npi=1,
            address_range="^123",
        )
        [bind] = peer.received()
        self.assertIsInstance(bind, BindTransceiver)
        self.assertEqual(
            (
                bind.system_id,
                bind.password,
                bind.system_type,
                bind.interface_version,
                bind.addr_ton,
                bind.addr_npi,
                bind.address_range,
            ),
            ("esme1", "secret", "VMA", 0x34, 1, 1, "^123"),
        )
        self.assertEqual(self.owner.names(), ["binding"])
        self.assertFalse(session.is_bound)

    def test_bind_types(self) -> None:
        for cls in (BindTransmitter, BindReceiver):
            _, peer = self.connect(bind_class=cls)
            [bind] = peer.received()
            self.assertIsInstance(bind, cls)

    def test_bound(self) -> None:
        """A bind response with ESME_ROK binds the session."""
        _session, _ = self.bind()
        self.assertEqual(self.owner.names(), ["binding", "bound"])

    def test_bind_rejected(self) -> None:
        """A refused bind is reported and the connection closed."""
        session, peer = self.connect()
        [bind] = peer.received()
        peer.send(bind.response(CommandStatus.ESME_RINVPASWD))
        self.assertEqual(
            self.owner.calls[1],
            ("bind_failed", "bind_transceiver_resp ESME_RINVPASWD"),
        )
        self.assertFalse(session.is_bound)
        self.assertFalse(peer.connected)
        self.assertEqual(self.owner.names()[-1], "closed")

    def test_bind_timeout(self) -> None:
        """No bind response within the bind timeout: report it and close."""
        session, peer = self.connect(bind_timeout=5.0)
        self.clock.advance(4.9)
        self.assertTrue(peer.connected)
        self.clock.advance(0.1)
        self.assertEqual(self.owner.calls[1][0], "bind_timeout")
        self.assertFalse(peer.connected)
        self.assertTrue(session.is_closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_late_bind_response_ignored(self) -> None:
        """A bind response after the timeout changes nothing."""
        session, peer = self.connect(bind_timeout=5.0)
        [bind] = peer.received()
        self.clock.advance(5.0)
        peer.send(bind.response())
        self.assertFalse(session.is_bound)

    def test_deliver_before_bound_refused(self) -> None:
        """The SMSC may not deliver before the bind completes."""
        _, peer = self.connect()
        peer.received()
        peer.send(DeliverSM(sequence_number=7, short_message=b"early"))
        [resp] = peer.received()
        self.assertEqual(
            (resp.command_id, resp.command_status),
            (CommandId.DELIVER_SM_RESP, CommandStatus.ESME_RINVBNDSTS),
        )
        self.assertEqual(self.owner.requests, [])


class KeepAliveTests(SessionTestCase):
    def test_enquire_link_every_interval(self) -> None:
        """enquire_link goes out every interval once bound."""
        _, peer = self.bind(enquire_link_interval=30.0)
        self.clock.advance(29)
        self.assertEqual(peer.received(), [])
        self.clock.advance(1)
        [enquire] = peer.received()
        self.assertIsInstance(enquire, EnquireLink)
        peer.send(enquire.response())
        self.clock.advance(30)
        [again] = peer.received()
        self.assertIsInstance(again, EnquireLink)
        self.assertNotEqual(again.sequence_number, enquire.sequence_number)

    def test_unanswered_enquire_link_drops_the_link(self) -> None:
        """No enquire_link_resp within the response timeout: abort."""
        session, peer = self.bind(enquire_link_interval=30.0, response_timeout=10.0)
        self.clock.advance(30)
        peer.received()
        self.clock.advance(10)
        self.assertTrue(peer.transport.disconnected)
        self.assertEqual(
            self.owner.calls[-1], ("closed", "no response to enquire_link within 10s")
        )
        self.assertFalse(session.is_bound)

    def test_answers_enquire_link(self) -> None:
        """The peer's enquire_link is answered, bound or not."""
        _, peer = self.connect()
        peer.received()
        peer.send(EnquireLink(sequence_number=42))
        [resp] = peer.received()
        self.assertIsInstance(resp, EnquireLinkResp)
        self.assertEqual(resp.sequence_number, 42)


class RequestTests(SessionTestCase):
    def test_request_response(self) -> None:
        """send_request fires with the response of the same sequence number."""
        session, peer = self.bind()
        d = session.send_request(submit(session))
        [sent] = peer.received()
        self.assertNoResult(d)
        self.assertEqual(session.outstanding, 1)
        peer.send(SubmitSMResp(sequence_number=sent.sequence_number, message_id="abc"))
        response = self.successResultOf(d)
        self.assertEqual(response.message_id, "abc")
        self.assertEqual(session.outstanding, 0)

    def test_responses_out_of_order(self) -> None:
        session, peer = self.bind()
        first = session.send_request(submit(session))
        second = session.send_request(submit(session))
        a, b = peer.received()
        peer.send(SubmitSMResp(sequence_number=b.sequence_number, message_id="2"))
        peer.send(SubmitSMResp(sequence_number=a.sequence_number, message_id="1"))
        self.assertEqual(self.successResultOf(first).message_id, "1")
        self.assertEqual(self.successResultOf(second).message_id, "2")

    def test_error_status_is_a_response(self) -> None:
        """An error status still answers the request; the caller decides."""
        session, peer = self.bind()
        d = session.send_request(submit(session))
        [sent] = peer.received()
        peer.send(
            SubmitSMResp(
                sequence_number=sent.sequence_number,
                command_status=CommandStatus.ESME_RTHROTTLED,
            )
        )
        self.assertEqual(
            self.successResultOf(d).command_status, CommandStatus.ESME_RTHROTTLED
        )

    def test_generic_nack_answers_a_request(self) -> None:
        session, peer = self.bind()
        d = session.send_request(submit(session))
        [sent] = peer.received()
        peer.send(
            GenericNack(
                sequence_number=sent.sequence_number,
                command_status=CommandStatus.ESME_RINVCMDLEN,
            )
        )
        self.assertIsInstance(self.successResultOf(d), GenericNack)

    def test_not_bound(self) -> None:
        session, _ = self.connect()
        self.assertRaises(NotBound, session.send_request, submit(session))

    def test_response_timeout_drops_the_link(self) -> None:
        """A request unanswered for the response timeout fails and the
        connection is aborted, failing the other requests too."""
        session, peer = self.bind(response_timeout=10.0)
        first = session.send_request(submit(session))
        self.clock.advance(5)
        second = session.send_request(submit(session))
        self.clock.advance(5)
        self.failureResultOf(first, ResponseTimeout)
        self.failureResultOf(second, SessionClosed)
        self.assertTrue(peer.transport.disconnected)

    def test_answered_requests_do_not_time_out(self) -> None:
        session, peer = self.bind(response_timeout=10.0)
        for _ in range(3):
            d = session.send_request(submit(session))
            [sent] = peer.received()
            self.clock.advance(6)
            peer.send(
                SubmitSMResp(sequence_number=sent.sequence_number, message_id="x")
            )
            self.successResultOf(d)
        self.clock.advance(30)
        self.assertTrue(peer.connected)

    def test_connection_lost_fails_requests(self) -> None:
        session, peer = self.bind()
        d = session.send_request(submit(session))
        peer.drop()
        failure = self.failureResultOf(d, SessionClosed)
        self.assertIn("Bye", str(failure.value))
        self.assertEqual(self.owner.names()[-1], "closed")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unexpected_response_ignored(self) -> None:
        _session, peer = self.bind()
        peer.send(SubmitSMResp(sequence_number=999, message_id="x"))
        self.assertTrue(peer.connected)
        self.assertEqual(peer.received(), [])

    def test_sequence_numbers_wrap(self) -> None:
        """Sequence numbers go back to 1 after 0x7FFFFFFF."""
        session, peer = self.connect(sequence=SequenceGenerator(MAX_SEQUENCE_NUMBER))
        [bind] = peer.received()
        self.assertEqual(bind.sequence_number, MAX_SEQUENCE_NUMBER)
        peer.send(bind.response())
        session.send_request(submit(session))
        [sent] = peer.received()
        self.assertEqual(sent.sequence_number, 1)


class DeliveryTests(SessionTestCase):
    def test_deliver_sm_answered_with_owner_status(self) -> None:
        """deliver_sm goes to the owner; the response waits for its answer."""
        _, peer = self.bind()
        answer: Deferred[int] = Deferred()
        self.owner.answer = answer
        peer.send(DeliverSM(sequence_number=5, short_message=b"hi"))
        self.assertEqual(len(self.owner.requests), 1)
        self.assertEqual(peer.received(), [])
        answer.callback(CommandStatus.ESME_RX_T_APPN)
        [resp] = peer.received()
        self.assertIsInstance(resp, DeliverSMResp)
        self.assertEqual(
            (resp.sequence_number, resp.command_status),
            (5, CommandStatus.ESME_RX_T_APPN),
        )

    def test_data_sm(self) -> None:
        _, peer = self.bind()
        peer.send(DataSM(sequence_number=6))
        [resp] = peer.received()
        self.assertEqual(
            (resp.command_id, resp.command_status), (CommandId.DATA_SM_RESP, 0)
        )

    def test_owner_failure_is_a_temporary_error(self) -> None:
        """If handling fails, the SMSC is told to try again later."""
        _, peer = self.bind()
        answer: Deferred[int] = Deferred()
        self.owner.answer = answer
        peer.send(DeliverSM(sequence_number=5))
        answer.errback(RuntimeError("broker down"))
        [resp] = peer.received()
        self.assertEqual(resp.command_status, CommandStatus.ESME_RX_T_APPN)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_unknown_command_gets_generic_nack(self) -> None:
        """A command id SMPP 3.4 does not define: generic_nack ESME_RINVCMDID."""
        _, peer = self.bind()
        header = (16).to_bytes(4, "big") + (0x777).to_bytes(4, "big")
        peer.send_bytes(header + (0).to_bytes(4, "big") + (9).to_bytes(4, "big"))
        [nack] = peer.received()
        self.assertIsInstance(nack, GenericNack)
        self.assertEqual((nack.sequence_number, nack.command_status), (9, 3))
        self.assertTrue(peer.connected)

    def test_unsupported_request_refused(self) -> None:
        """A request an ESME does not serve is answered ESME_RINVCMDID."""
        _, peer = self.bind()
        peer.send(QuerySM(sequence_number=4, message_id="1"))
        [resp] = peer.received()
        self.assertEqual(
            (resp.command_id, resp.command_status),
            (CommandId.QUERY_SM_RESP, CommandStatus.ESME_RINVCMDID),
        )

    def test_malformed_request_answered_with_its_error(self) -> None:
        """A deliver_sm whose body is broken gets deliver_sm_resp with the
        decoding error, and the next PDU is read normally."""
        _, peer = self.bind()
        good = encode_pdu(DeliverSM(sequence_number=3, short_message=b"abc"))
        # Claim 200 octets of short_message where there are 3.
        broken = bytearray(good)
        broken[-4] = 200
        peer.send_bytes(bytes(broken) + encode_pdu(EnquireLink(sequence_number=4)))
        resp, enquire_resp = peer.received()
        self.assertEqual(
            (resp.command_id, resp.sequence_number, resp.command_status),
            (CommandId.DELIVER_SM_RESP, 3, CommandStatus.ESME_RINVMSGLEN),
        )
        self.assertIsInstance(enquire_resp, EnquireLinkResp)
        self.assertEqual(self.owner.requests, [])

    def test_malformed_response_fails_its_request(self) -> None:
        session, peer = self.bind()
        d = session.send_request(submit(session))
        [sent] = peer.received()
        header = (17).to_bytes(4, "big") + CommandId.SUBMIT_SM_RESP.to_bytes(4, "big")
        # A one-octet body that is not a NUL-terminated message_id.
        peer.send_bytes(
            header + bytes(4) + sent.sequence_number.to_bytes(4, "big") + b"x"
        )
        self.failureResultOf(d, MalformedResponse)
        self.assertEqual(peer.received(), [])

    def test_framing_error_drops_the_connection(self) -> None:
        """An impossible command_length: generic_nack, then the link drops."""
        session, peer = self.bind()
        peer.send_bytes(
            (8).to_bytes(4, "big") + bytes(4) + bytes(4) + (12).to_bytes(4, "big")
        )
        [nack] = peer.received()
        self.assertIsInstance(nack, GenericNack)
        self.assertEqual(
            (nack.sequence_number, nack.command_status),
            (12, CommandStatus.ESME_RINVCMDLEN),
        )
        self.assertTrue(session.is_closed)

    def test_split_and_coalesced_pdus(self) -> None:
        """PDUs split across reads and several in one read are all taken."""
        _, peer = self.bind()
        data = b"".join(encode_pdu(EnquireLink(sequence_number=n)) for n in (1, 2, 3))
        for index in range(0, len(data), 5):
            peer.send_bytes(data[index : index + 5])
        self.assertEqual([p.sequence_number for p in peer.received()], [1, 2, 3])


class UnbindTests(SessionTestCase):
    def test_unbind(self) -> None:
        """unbind() sends unbind; its response closes the connection."""
        session, peer = self.bind()
        session.unbind()
        self.assertFalse(session.is_bound)
        [unbind] = peer.received()
        self.assertIsInstance(unbind, Unbind)
        closed = session.wait_closed()
        self.assertNoResult(closed)
        peer.send(unbind.response())
        self.successResultOf(closed)
        self.assertEqual(self.owner.names()[-1], "closed")

    def test_deliveries_taken_while_unbinding(self) -> None:
        session, peer = self.bind()
        session.unbind()
        peer.received()
        peer.send(DeliverSM(sequence_number=8))
        [resp] = peer.received()
        self.assertEqual(resp.command_status, 0)

    def test_unbind_timeout(self) -> None:
        session, peer = self.bind(unbind_timeout=2.0)
        session.unbind()
        self.clock.advance(2.0)
        self.assertTrue(peer.transport.disconnected)
        self.assertTrue(session.is_closed)

    def test_unbind_while_binding_just_closes(self) -> None:
        session, peer = self.connect()
        peer.received()
        session.unbind()
        self.assertEqual(peer.received(), [])
        self.assertTrue(session.is_closed)

    def test_unbind_twice(self) -> None:
        session, peer = self.bind()
        session.unbind()
        session.unbind()
        self.assertEqual(len(peer.received()), 1)

    def test_peer_unbind(self) -> None:
        """The SMSC's unbind is answered and the connection closed."""
        session, peer = self.bind()
        d = session.send_request(submit(session))
        peer.received()
        peer.send(Unbind(sequence_number=77))
        [resp] = peer.received()
        self.assertIsInstance(resp, UnbindResp)
        self.assertEqual(resp.sequence_number, 77)
        self.failureResultOf(d, SessionClosed)
        self.assertTrue(session.is_closed)

    def test_unexpected_bind_response_when_bound(self) -> None:
        session, peer = self.bind()
        peer.send(BindTransceiverResp(sequence_number=12345))
        self.assertTrue(session.is_bound)
