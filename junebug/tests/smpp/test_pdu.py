"""SMPP 3.4 PDU model, codec and framer."""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from junebug.transports.smpp import pdu as p
from junebug.transports.smpp.pdu import (
    PDU,
    PDU_CLASSES,
    AlertNotification,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    CommandId,
    CommandStatus,
    DataSM,
    DeliverSM,
    EnquireLink,
    EnquireLinkResp,
    FramingError,
    GenericNack,
    Outbind,
    PDUDecodeError,
    PDUEncodeError,
    PDUFramer,
    SubmitSM,
    SubmitSMResp,
    Tag,
    Unbind,
    UnbindResp,
    decode_pdu,
    encode_pdu,
    status_description,
    status_name,
)

S = CommandStatus


def h(text: str) -> bytes:
    """Bytes from hex written with spaces and line breaks for readability."""
    return bytes.fromhex("".join(text.split()))


# --------------------------------------------------------------------------
# Strategies

_latin1 = st.characters(min_codepoint=1, max_codepoint=0xFF)


def _param_strategy(param: Any) -> st.SearchStrategy[Any]:
    kind = param.kind.name
    if kind == "INT1":
        return st.integers(0, 0xFF)
    if kind == "CSTRING":
        return st.text(_latin1, max_size=param.max_length - 1)
    return st.binary(max_size=p.MAX_SHORT_MESSAGE_LENGTH)


def _tlv_strategy() -> st.SearchStrategy[dict[int, Any]]:
    known: list[st.SearchStrategy[tuple[int, Any]]] = []
    for tag, size in p._TLV_INT_SIZES.items():
        known.append(st.tuples(st.just(tag), st.integers(0, (1 << (8 * size)) - 1)))
    for tag, max_length in p._TLV_CSTRING_MAX.items():
        known.append(st.tuples(st.just(tag), st.text(_latin1, max_size=max_length - 1)))
    unknown_tags = st.integers(0, 0xFFFF).filter(
        lambda tag: tag not in p._TLV_INT_SIZES and tag not in p._TLV_CSTRING_MAX
    )
    known.append(st.tuples(unknown_tags, st.binary(max_size=300)))
    known.append(st.tuples(st.just(int(Tag.MESSAGE_PAYLOAD)), st.binary(max_size=600)))
    return st.lists(st.one_of(known), max_size=5).map(dict)


@st.composite
def pdus(draw: st.DrawFn, classes: list[type[PDU]] | None = None) -> PDU:
    cls = draw(st.sampled_from(classes or list(PDU_CLASSES.values())))
    fields = {param.name: draw(_param_strategy(param)) for param in cls.body}
    return cls(
        sequence_number=draw(st.integers(0, 0xFFFFFFFF)),
        command_status=draw(st.integers(0, 0xFFFFFFFF)),
        tlvs=draw(_tlv_strategy()),
        **fields,
    )


# --------------------------------------------------------------------------


class ModelTests(SynchronousTestCase):
    def test_every_class_declares_its_body_fields(self) -> None:
        """Each PDU class's body description names exactly its attrs fields."""
        base = {"sequence_number", "command_status", "tlvs"}
        for cls in PDU_CLASSES.values():
            names = {field.name for field in attrs.fields(cls)} - base
            self.assertEqual(names, {param.name for param in cls.body}, cls)

    def test_command_ids_match_spec_values(self) -> None:
        """A sample of command ids, straight from SMPP 3.4 section 5.1.2.1."""
        self.assertEqual(CommandId.SUBMIT_SM, 0x00000004)
        self.assertEqual(CommandId.DELIVER_SM_RESP, 0x80000005)
        self.assertEqual(CommandId.BIND_TRANSCEIVER, 0x00000009)
        self.assertEqual(CommandId.ENQUIRE_LINK, 0x00000015)
        self.assertEqual(CommandId.DATA_SM, 0x00000103)
        self.assertEqual(CommandId.GENERIC_NACK, 0x80000000)
        self.assertEqual(CommandId.OUTBIND, 0x0000000B)
        self.assertEqual(CommandId.ALERT_NOTIFICATION, 0x00000102)

    def test_status_values_and_names(self) -> None:
        """Statuses have spec values; unknown ones still get a name."""
        self.assertEqual(S.ESME_RTHROTTLED, 0x58)
        self.assertEqual(S.ESME_RMSGQFUL, 0x14)
        self.assertEqual(S.ESME_RINVCMDID, 0x03)
        self.assertEqual(S.ESME_RINVCMDLEN, 0x02)
        self.assertEqual(S.ESME_RBINDFAIL, 0x0D)
        self.assertEqual(status_name(0x58), "ESME_RTHROTTLED")
        self.assertEqual(status_name(0x400), "0x00000400")
        self.assertEqual(status_description(0x14), "Message Queue Full")
        self.assertIn("vendor", status_description(0x401))
        self.assertEqual(status_description(0x30), "Reserved")

    def test_response_pairs_sequence_number(self) -> None:
        """``response()`` builds the matching *_resp with the same sequence."""
        resp = SubmitSM(sequence_number=42).response(message_id="abc")
        self.assertEqual(resp, SubmitSMResp(sequence_number=42, message_id="abc"))
        nack = EnquireLink(sequence_number=3).response(S.ESME_RSYSERR)
        self.assertEqual(
            nack, EnquireLinkResp(sequence_number=3, command_status=S.ESME_RSYSERR)
        )
        self.assertEqual(
            Unbind(sequence_number=1).response(), UnbindResp(sequence_number=1)
        )

    def test_responses_and_unanswered_requests_have_no_response(self) -> None:
        """Responses, outbind and alert_notification cannot be answered."""
        for pdu in (
            SubmitSMResp(sequence_number=1),
            GenericNack(sequence_number=1),
            Outbind(sequence_number=1),
            AlertNotification(sequence_number=1),
        ):
            self.assertRaises(TypeError, pdu.response)

    def test_names_and_flags(self) -> None:
        """command_name is the spec name; is_response follows bit 31."""
        self.assertEqual(DeliverSM(sequence_number=1).command_name, "deliver_sm")
        self.assertFalse(DeliverSM(sequence_number=1).is_response)
        self.assertTrue(GenericNack(sequence_number=1).is_response)

    def test_tlvs_are_copied_with_plain_int_tags(self) -> None:
        """TLVs are copied, and Tag keys become plain ints."""
        given_tlvs: dict[int, p.TLVValue] = {Tag.SOURCE_PORT: 80}
        pdu = SubmitSM(sequence_number=1, tlvs=given_tlvs)
        given_tlvs[Tag.DESTINATION_PORT] = 81
        self.assertEqual(pdu.tlvs, {0x020A: 80})
        self.assertIs(type(next(iter(pdu.tlvs))), int)
        self.assertEqual(pdu.tlv(Tag.SOURCE_PORT), 80)
        self.assertIsNone(pdu.tlv(Tag.DESTINATION_PORT))


class RoundTripTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(pdus())
    def test_every_pdu_round_trips(self, pdu: PDU) -> None:
        """Any valid PDU of any type decodes back to itself."""
        data = encode_pdu(pdu)
        self.assertEqual(int.from_bytes(data[:4], "big"), len(data))
        self.assertEqual(decode_pdu(data), pdu)

    def test_each_type_round_trips_with_defaults(self) -> None:
        """Every PDU type round-trips with its default values."""
        for cls in PDU_CLASSES.values():
            pdu = cls(sequence_number=7)
            self.assertEqual(decode_pdu(encode_pdu(pdu)), pdu, cls)


class CaptureTests(SynchronousTestCase):
    """Bytes written by hand from the spec, to catch symmetric codec bugs."""

    def assert_capture(self, data: bytes, expected: PDU) -> None:
        self.assertEqual(decode_pdu(data), expected)
        self.assertEqual(encode_pdu(expected), data)

    def test_bind_transceiver(self) -> None:
        """bind_transceiver: C-Octet strings, interface_version 0x34."""
        self.assert_capture(
            h(
                """
                0000002a 00000009 00000000 00000001
                736d7070636c69656e743100  70617373776f726400  00
                34 00 00  00
                """
            ),
            BindTransceiver(
                sequence_number=1, system_id="smppclient1", password="password"
            ),
        )

    def test_bind_transmitter_with_address_range(self) -> None:
        """bind_transmitter carrying system_type and an address range."""
        self.assert_capture(
            h(
                """
                00000023 00000002 00000000 7fffffff
                696400  707700  565841535000  34 01 01  5e323700
                """
            ),
            BindTransmitter(
                sequence_number=0x7FFFFFFF,
                system_id="id",
                password="pw",
                system_type="VXASP",
                addr_ton=1,
                addr_npi=1,
                address_range="^27",
            ),
        )

    def test_bind_transceiver_resp_with_sc_interface_version(self) -> None:
        """bind_transceiver_resp with the sc_interface_version TLV."""
        self.assert_capture(
            h("0000001a 80000009 00000000 00000001 534d534300 0210 0001 34"),
            BindTransceiverResp(
                sequence_number=1,
                system_id="SMSC",
                tlvs={Tag.SC_INTERFACE_VERSION: 0x34},
            ),
        )

    def test_bind_resp_failure_without_body(self) -> None:
        """A failed bind response may come without its body."""
        self.assertEqual(
            decode_pdu(h("00000010 80000009 0000000d 00000001")),
            BindTransceiverResp(sequence_number=1, command_status=S.ESME_RBINDFAIL),
        )

    def test_enquire_link_and_generic_nack(self) -> None:
        """Header-only PDUs."""
        self.assert_capture(
            h("00000010 00000015 00000000 00000007"), EnquireLink(sequence_number=7)
        )
        self.assert_capture(
            h("00000010 80000000 00000003 00000007"),
            GenericNack(sequence_number=7, command_status=S.ESME_RINVCMDID),
        )
        self.assert_capture(
            h("00000010 80000006 00000000 00000002"), UnbindResp(sequence_number=2)
        )

    def test_submit_sm_resp(self) -> None:
        """submit_sm_resp carries the SMSC message id."""
        self.assert_capture(
            h("00000017 80000004 00000000 00000005 61626331323300"),
            SubmitSMResp(sequence_number=5, message_id="abc123"),
        )

    def test_throttled_submit_sm_resp_without_body(self) -> None:
        """An error submit_sm_resp may omit message_id (SMPP 3.4 4.4.2)."""
        self.assertEqual(
            decode_pdu(h("00000010 80000004 00000058 00000005")),
            SubmitSMResp(sequence_number=5, command_status=S.ESME_RTHROTTLED),
        )

    def test_submit_sm(self) -> None:
        """submit_sm: each mandatory field in order, then sm_length."""
        self.assert_capture(
            h(
                """
                00000032 00000004 00000000 00000003
                00  05 00 4a756e6500  01 01 323738323132333400
                00 00 00  00 00  01 00 00 00  05 48656c6c6f
                """
            ),
            SubmitSM(
                sequence_number=3,
                source_addr_ton=5,
                source_addr="June",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr="27821234",
                registered_delivery=1,
                short_message=b"Hello",
            ),
        )

    def test_submit_sm_with_sar_tlvs(self) -> None:
        """submit_sm with the three SAR TLVs after short_message."""
        self.assert_capture(
            h(
                """
                00000033 00000004 00000000 00000004
                00 00 00 00  00 00 00  00 00 00  00 00  00 00 08 00  02 0041
                020c 0002 1234  020e 0001 03  020f 0001 01
                """
            ),
            SubmitSM(
                sequence_number=4,
                data_coding=8,
                short_message=b"\x00A",
                tlvs={
                    Tag.SAR_MSG_REF_NUM: 0x1234,
                    Tag.SAR_TOTAL_SEGMENTS: 3,
                    Tag.SAR_SEGMENT_SEQNUM: 1,
                },
            ),
        )

    def test_deliver_sm_receipt(self) -> None:
        """A delivery receipt deliver_sm with text and receipt TLVs."""
        text = (
            b"id:0123456789 sub:001 dlvrd:001 submit date:2501011200 "
            b"done date:2501011201 stat:DELIVRD err:000 text:Hello"
        )
        data = (
            h(
                """
                000000af 00000005 00000000 0000000b
                00  01 01 323738323132333435363700  00 00 3132333400
                04 00 00  00 00  00 00 00 00  6b
                """
            )
            + text
            + h("001e 000b 3031323334353637383900  0427 0001 02")
        )
        self.assert_capture(
            data,
            DeliverSM(
                sequence_number=11,
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr="27821234567",
                destination_addr="1234",
                esm_class=4,
                short_message=text,
                tlvs={Tag.RECEIPTED_MESSAGE_ID: "0123456789", Tag.MESSAGE_STATE: 2},
            ),
        )

    def test_receipted_message_id_without_nul(self) -> None:
        """Some SMSCs omit receipted_message_id's NUL: accept it."""
        data = h(
            """
            00000028 00000005 00000000 00000001
            00 00 00 00  00 00 00  00 00 00  00 00  00 00 00 00  00
            001e 0003 616263
            """
        )
        self.assertEqual(decode_pdu(data).tlv(Tag.RECEIPTED_MESSAGE_ID), "abc")

    def test_deliver_sm_with_concatenation_udh(self) -> None:
        """deliver_sm with UDHI and a UCS-2 part behind an 8-bit-ref UDH."""
        self.assert_capture(
            h(
                """
                0000002d 00000005 00000000 00000009
                00 00 00 3100 00 00 3200  40 00 00  00 00  00 00 08 00
                0a 050003 2a 02 01 0048 0069
                """
            ),
            DeliverSM(
                sequence_number=9,
                source_addr="1",
                destination_addr="2",
                esm_class=0x40,
                data_coding=8,
                short_message=h("050003 2a 02 01 0048 0069"),
            ),
        )

    def test_data_sm_with_payload_and_ussd(self) -> None:
        """data_sm with message_payload, ussd_service_op, its_session_info."""
        self.assert_capture(
            h(
                """
                00000031 00000103 00000000 0000000c
                555353440001 01 3100  00 00 3200  00 00 00
                0424 0002 4869  0501 0001 01  1383 0002 0a01
                """
            ),
            DataSM(
                sequence_number=12,
                service_type="USSD",
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr="1",
                destination_addr="2",
                tlvs={
                    Tag.MESSAGE_PAYLOAD: b"Hi",
                    Tag.USSD_SERVICE_OP: 1,
                    Tag.ITS_SESSION_INFO: 0x0A01,
                },
            ),
        )

    def test_outbind_and_alert_notification(self) -> None:
        """outbind and alert_notification decode from the SMSC's bytes."""
        self.assert_capture(
            h("00000018 0000000b 00000000 00000001 736d736300 707700"),
            Outbind(sequence_number=1, system_id="smsc", password="pw"),
        )
        self.assert_capture(
            h(
                """
                00000021 00000102 00000000 00000002
                01 01 32373832303000  00 00 00
                0422 0001 00
                """
            ),
            AlertNotification(
                sequence_number=2,
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr="278200",
                tlvs={Tag.MS_AVAILABILITY_STATUS: 0},
            ),
        )

    def test_unknown_tlv_is_kept_as_bytes(self) -> None:
        """A vendor TLV survives as raw bytes."""
        data = h("00000017 80000004 00000000 00000001 00 1400 0002 abcd")
        pdu = decode_pdu(data)
        self.assertEqual(pdu.tlvs, {0x1400: b"\xab\xcd"})
        self.assertEqual(encode_pdu(pdu), data)


class DecodeErrorTests(SynchronousTestCase):
    def assert_error(
        self, data: bytes, status: int, sequence_number: int | None = 1
    ) -> PDUDecodeError:
        error = self.assertRaises(PDUDecodeError, decode_pdu, data)
        self.assertEqual(error.command_status, status, error)
        self.assertEqual(error.sequence_number, sequence_number)
        return error

    def test_short_header(self) -> None:
        """Fewer than 16 octets: RINVCMDLEN and no sequence number."""
        self.assert_error(h("0000000c 00000015 00000000"), S.ESME_RINVCMDLEN, None)

    def test_length_mismatch(self) -> None:
        """command_length disagrees with the octets given: RINVCMDLEN."""
        self.assert_error(h("00000014 00000015 00000000 00000001"), S.ESME_RINVCMDLEN)

    def test_unknown_command_id(self) -> None:
        """An unknown command: RINVCMDID, with the command id and sequence."""
        error = self.assert_error(
            h("00000010 00000099 00000000 00000001"), S.ESME_RINVCMDID
        )
        self.assertEqual(error.command_id, 0x99)
        self.assertEqual(
            error.generic_nack(),
            GenericNack(sequence_number=1, command_status=S.ESME_RINVCMDID),
        )
        self.assertIn("ESME_RINVCMDID", repr(error))

    def test_submit_multi_is_not_supported(self) -> None:
        """submit_multi is not modelled, so it is answered as unknown."""
        self.assert_error(h("00000010 00000021 00000000 00000001"), S.ESME_RINVCMDID)

    def test_truncated_body(self) -> None:
        """A body that ends inside the mandatory fields: RINVCMDLEN."""
        self.assert_error(
            h("00000015 00000004 00000000 00000001 00 01 01 3100"), S.ESME_RINVCMDLEN
        )
        self.assert_error(
            h("00000013 80000004 00000000 00000001 616263"), S.ESME_RINVCMDLEN
        )

    def test_sm_length_past_the_body(self) -> None:
        """sm_length larger than what follows: RINVMSGLEN."""
        self.assert_error(
            h(
                """
                00000023 00000004 00000000 00000001
                00 00 00 00  00 00 00  00 00 00  00 00  00 00 00 00  05 4869
                """
            ),
            S.ESME_RINVMSGLEN,
        )

    def test_sm_length_above_254(self) -> None:
        """sm_length 255 is beyond the spec's 254: RINVMSGLEN."""
        body = h("00 00 00 00  00 00 00  00 00 00  00 00  00 00 00 00 ff") + b"x" * 255
        header = (16 + len(body)).to_bytes(4, "big") + h("00000004 00000000 00000001")
        self.assert_error(header + body, S.ESME_RINVMSGLEN)

    def test_overlong_c_octet_string(self) -> None:
        """A system_id of 16 characters (max 15 + NUL): RINVPARLEN."""
        body = b"x" * 16 + h("00 00 00 34 00 00 00")
        header = (16 + len(body)).to_bytes(4, "big") + h("00000009 00000000 00000001")
        self.assert_error(header + body, S.ESME_RINVPARLEN)

    def test_broken_tlv_stream(self) -> None:
        """Stray octets or a TLV running past the body: RINVOPTPARSTREAM."""
        self.assert_error(
            h("00000013 80000004 00000000 00000001 00 0210"),
            S.ESME_RINVOPTPARSTREAM,
        )
        self.assert_error(
            h("00000016 80000004 00000000 00000001 00 0210 0005 34"),
            S.ESME_RINVOPTPARSTREAM,
        )

    def test_tlv_of_wrong_size(self) -> None:
        """An integer TLV of the wrong size: RINVPARLEN."""
        self.assert_error(
            h("00000017 80000004 00000000 00000001 00 0427 0002 0002"),
            S.ESME_RINVPARLEN,
        )

    def test_overlong_cstring_tlv(self) -> None:
        """receipted_message_id longer than 64 characters: RINVPARLEN."""
        value = b"x" * 65
        body = h("00 001e 0041") + value
        header = (16 + len(body)).to_bytes(4, "big") + h("80000004 00000000 00000001")
        self.assert_error(header + body, S.ESME_RINVPARLEN)


class FuzzTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_arbitrary_bytes_only_raise_decode_errors(self, data: bytes) -> None:
        """Garbage never escapes as anything but PDUDecodeError."""
        with contextlib.suppress(PDUDecodeError):
            decode_pdu(data)
        with contextlib.suppress(PDUDecodeError):
            list(PDUFramer().feed(data))

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(sorted(PDU_CLASSES)), st.binary(max_size=200))
    def test_arbitrary_bodies(self, command_id: int, body: bytes) -> None:
        """Any body for a known command either decodes to a PDU that encodes
        again, or fails with the sequence number needed for a nack."""
        header = (16 + len(body)).to_bytes(4, "big") + command_id.to_bytes(4, "big")
        data = header + h("00000000 00000009") + body
        try:
            pdu = decode_pdu(data)
        except PDUDecodeError as e:
            self.assertEqual(e.sequence_number, 9)
            self.assertEqual(e.command_id, command_id)
            self.assertIn(
                e.command_status,
                {
                    S.ESME_RINVCMDLEN,
                    S.ESME_RINVMSGLEN,
                    S.ESME_RINVPARLEN,
                    S.ESME_RINVOPTPARSTREAM,
                },
            )
        else:
            self.assertEqual(decode_pdu(encode_pdu(pdu)), pdu)


class EncodeErrorTests(SynchronousTestCase):
    def test_invalid_values_are_refused(self) -> None:
        """Values that the wire format cannot hold raise PDUEncodeError."""
        bad = [
            BindTransmitter(sequence_number=1, system_id="x" * 16),
            BindTransmitter(sequence_number=1, password="123456789"),
            SubmitSM(sequence_number=1, source_addr="€"),
            SubmitSM(sequence_number=1, source_addr="a\x00b"),
            SubmitSM(sequence_number=1, esm_class=256),
            SubmitSM(sequence_number=1, esm_class=True),
            SubmitSM(sequence_number=1, short_message=b"x" * 255),
            SubmitSM(sequence_number=1, tlvs={Tag.SAR_MSG_REF_NUM: 0x10000}),
            SubmitSM(sequence_number=1, tlvs={Tag.SAR_MSG_REF_NUM: b"\x00\x01"}),
            SubmitSM(sequence_number=1, tlvs={Tag.RECEIPTED_MESSAGE_ID: 5}),
            SubmitSM(sequence_number=1, tlvs={0x1400: "text"}),
            SubmitSM(sequence_number=1, tlvs={Tag.MESSAGE_PAYLOAD: b"x" * 0x10000}),
            SubmitSM(sequence_number=1, tlvs={0x10000: b""}),
            EnquireLink(sequence_number=-1),
            EnquireLink(sequence_number=1 << 32),
        ]
        for pdu in bad:
            self.assertRaises(PDUEncodeError, encode_pdu, pdu)

    def test_wrong_field_types_are_refused(self) -> None:
        """A str where an int belongs (or the reverse) raises PDUEncodeError."""
        self.assertRaises(
            PDUEncodeError, encode_pdu, SubmitSM(sequence_number=1, data_coding="0")
        )
        self.assertRaises(
            PDUEncodeError, encode_pdu, SubmitSM(sequence_number=1, source_addr=1)
        )
        self.assertRaises(
            PDUEncodeError, encode_pdu, SubmitSM(sequence_number=1, short_message="x")
        )


class FramerTests(SynchronousTestCase):
    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(pdus(), min_size=1, max_size=4),
        st.lists(st.integers(0, 2000), max_size=10),
    )
    def test_any_chunking_yields_the_same_pdus(
        self, pdu_list: list[PDU], cuts: list[int]
    ) -> None:
        """However the stream is cut, the framer yields every PDU in order."""
        stream = b"".join(encode_pdu(pdu) for pdu in pdu_list)
        points = sorted({min(cut, len(stream)) for cut in cuts})
        chunks = [
            stream[start:end]
            for start, end in zip([0, *points], [*points, len(stream)], strict=True)
        ]
        framer = PDUFramer()
        received = [pdu for chunk in chunks for pdu in framer.feed(chunk)]
        self.assertEqual(received, pdu_list)
        self.assertEqual(framer.buffered, 0)

    def test_byte_by_byte(self) -> None:
        """Feeding one octet at a time works and keeps partial data buffered."""
        data = encode_pdu(SubmitSMResp(sequence_number=1, message_id="m"))
        framer = PDUFramer()
        for index in range(len(data) - 1):
            self.assertEqual(list(framer.feed(data[index : index + 1])), [])
        self.assertEqual(framer.buffered, len(data) - 1)
        self.assertEqual(
            list(framer.feed(data[-1:])),
            [SubmitSMResp(sequence_number=1, message_id="m")],
        )

    def test_many_pdus_in_one_chunk(self) -> None:
        """A large burst is split into every PDU it holds."""
        pdu_list = [EnquireLink(sequence_number=n) for n in range(1, 5001)]
        framer = PDUFramer()
        received = list(framer.feed(b"".join(map(encode_pdu, pdu_list))))
        self.assertEqual(received, pdu_list)

    def test_too_short_command_length_is_fatal(self) -> None:
        """command_length < 16: FramingError (RINVCMDLEN), sticky."""
        framer = PDUFramer()
        self.assertEqual(list(framer.feed(h("00000008 00000015"))), [])
        error = self.assertRaises(
            FramingError, list, framer.feed(h("00000000 0000002a"))
        )
        self.assertEqual(error.command_status, S.ESME_RINVCMDLEN)
        self.assertEqual(error.sequence_number, 0x2A)
        self.assertEqual(error.command_id, 0x15)
        again = self.assertRaises(FramingError, list, framer.feed(b""))
        self.assertIs(again, error)

    def test_huge_command_length_is_fatal(self) -> None:
        """command_length far above the maximum: FramingError."""
        framer = PDUFramer()
        self.assertRaises(
            FramingError, list, framer.feed(h("7fffffff 00000004 00000000 00000001"))
        )
        small = PDUFramer(max_length=100)
        self.assertRaises(
            FramingError, list, small.feed(h("00000065 00000004 00000000 00000001"))
        )

    def test_framer_continues_after_a_bad_pdu(self) -> None:
        """A malformed PDU raises; the PDUs after it are still delivered."""
        good = encode_pdu(EnquireLink(sequence_number=2))
        bad = h("00000010 00000099 00000000 00000001")
        framer = PDUFramer()
        pdus_iter = framer.feed(bad + good)
        error = self.assertRaises(PDUDecodeError, list, pdus_iter)
        self.assertEqual(error.command_status, S.ESME_RINVCMDID)
        self.assertEqual(list(framer.pdus()), [EnquireLink(sequence_number=2)])

    def test_next_frame_returns_raw_octets(self) -> None:
        """next_frame hands out a PDU's octets without decoding them."""
        data = encode_pdu(EnquireLink(sequence_number=2))
        framer = PDUFramer()
        self.assertEqual(list(framer.feed(b"")), [])
        framer.feed(data + data[:3])
        self.assertEqual(framer.next_frame(), data)
        self.assertIsNone(framer.next_frame())
        self.assertEqual(framer.buffered, 3)
