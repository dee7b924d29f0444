"""Delivery receipt parsing and message id correlation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from junebug.transports.smpp.pdu import DataSM, DeliverSM, Tag
from junebug.transports.smpp.reports import (
    MESSAGE_STATES,
    DeliveryReceipt,
    DeliveryStatus,
    IdBase,
    MessageIdNormaliser,
    delivery_status,
    is_receipt,
    normalise_message_id,
    parse_network_error_code,
    parse_receipt_text,
    receipt_from_pdu,
)

D = DeliveryStatus

STANDARD = (
    "id:0123456789 sub:001 dlvrd:001 submit date:2501011200 "
    "done date:2501011201 stat:DELIVRD err:000 text:Hello world"
)


class StatusTests(SynchronousTestCase):
    def test_text_states(self) -> None:
        """The receipt ``stat`` values map to vumi delivery statuses."""
        expected = {
            "DELIVRD": D.DELIVERED,
            "EXPIRED": D.FAILED,
            "DELETED": D.FAILED,
            "UNDELIV": D.FAILED,
            "REJECTD": D.FAILED,
            "UNKNOWN": D.FAILED,
            "ENROUTE": D.PENDING,
            "ACCEPTD": D.PENDING,
            "SCHEDULED": D.PENDING,
            "delivrd": D.DELIVERED,
            "failed": D.FAILED,
            "pending": D.PENDING,
            "WHATEVER": D.PENDING,
        }
        for state, status in expected.items():
            self.assertEqual(delivery_status(state), status, state)

    def test_message_state_numbers(self) -> None:
        """message_state 0..9 (SMPP 3.4 5.2.28, plus 5.0's 0 and 9)."""
        expected = [
            D.PENDING,  # 0 SCHEDULED
            D.PENDING,  # 1 ENROUTE
            D.DELIVERED,  # 2 DELIVERED
            D.FAILED,  # 3 EXPIRED
            D.FAILED,  # 4 DELETED
            D.FAILED,  # 5 UNDELIVERABLE
            D.PENDING,  # 6 ACCEPTED
            D.FAILED,  # 7 UNKNOWN
            D.FAILED,  # 8 REJECTED
            D.FAILED,  # 9 SKIPPED
        ]
        self.assertEqual([delivery_status(n) for n in range(10)], expected)
        self.assertEqual(delivery_status(42), D.PENDING)
        self.assertEqual(MESSAGE_STATES[5], "UNDELIVERABLE")

    def test_custom_mapping(self) -> None:
        """A configured mapping overrides the defaults, in any case."""
        mapping = {"acceptd": "delivered", "XYZ": D.FAILED}
        self.assertEqual(delivery_status("ACCEPTD", mapping), D.DELIVERED)
        self.assertEqual(delivery_status("xyz", mapping), D.FAILED)
        self.assertEqual(delivery_status(6, mapping), D.PENDING)


class TextReceiptTests(SynchronousTestCase):
    def test_standard_receipt(self) -> None:
        """Every field of the SMPP 3.4 appendix B form."""
        self.assertEqual(
            parse_receipt_text(STANDARD),
            DeliveryReceipt(
                message_id="0123456789",
                state="DELIVRD",
                status=D.DELIVERED,
                error="000",
                submitted="001",
                delivered="001",
                submit_date="2501011200",
                done_date="2501011201",
                text="Hello world",
            ),
        )

    def test_jasmin_receipt_without_text(self) -> None:
        """Jasmin's receipts have no sub, dlvrd or text."""
        receipt = parse_receipt_text(
            "id:ee87583d-8f11-4292-8f8f-d4de88e3fdaa submit date:2501011200 "
            "done date:2501011201 stat:UNDELIV err:000"
        )
        assert receipt is not None
        self.assertEqual(receipt.message_id, "ee87583d-8f11-4292-8f8f-d4de88e3fdaa")
        self.assertEqual(receipt.status, D.FAILED)
        self.assertIsNone(receipt.text)
        self.assertIsNone(receipt.submitted)

    def test_any_case_and_order(self) -> None:
        """Keys in any case and order; underscores in the date keys."""
        receipt = parse_receipt_text(
            "Stat:delivrd ERR:0 ID:abc Submit_Date:2501011200 Text:hi"
        )
        assert receipt is not None
        self.assertEqual(
            (receipt.message_id, receipt.state, receipt.error, receipt.text),
            ("abc", "DELIVRD", "0", "hi"),
        )
        self.assertEqual(receipt.submit_date, "2501011200")

    def test_text_takes_the_rest(self) -> None:
        """``text:`` quotes the message, which may look like receipt fields."""
        receipt = parse_receipt_text("id:1 stat:DELIVRD text:stat:EXPIRED id:2")
        assert receipt is not None
        self.assertEqual(receipt.message_id, "1")
        self.assertEqual(receipt.state, "DELIVRD")
        self.assertEqual(receipt.text, "stat:EXPIRED id:2")

    def test_embedded_keys_are_not_keys(self) -> None:
        """``msgid:`` is not ``id:``: keys start after whitespace."""
        self.assertIsNone(parse_receipt_text("msgid:1 stat:DELIVRD"))

    def test_not_receipts(self) -> None:
        """Text without both id and stat is not a receipt."""
        self.assertIsNone(parse_receipt_text("Hello there"))
        self.assertIsNone(parse_receipt_text("id:123 err:000"))
        self.assertIsNone(parse_receipt_text("stat:DELIVRD"))
        self.assertIsNone(parse_receipt_text("id: stat:DELIVRD"))
        self.assertIsNone(parse_receipt_text(""))

    def test_first_occurrence_wins(self) -> None:
        """A repeated key keeps its first value."""
        receipt = parse_receipt_text("id:1 id:2 stat:DELIVRD")
        assert receipt is not None
        self.assertEqual(receipt.message_id, "1")

    @settings(max_examples=200, deadline=None)
    @given(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
        st.sampled_from(["DELIVRD", "UNDELIV", "ENROUTE", "EXPIRED"]),
        st.permutations(["sub:001", "dlvrd:001", "err:000", "done date:2501011201"]),
    )
    def test_generated_receipts(
        self, message_id: str, state: str, others: list[str]
    ) -> None:
        """Any id of printable characters, fields in any order."""
        if ":" in message_id:
            message_id = message_id.replace(":", "")
        if not message_id:
            return
        text = " ".join([f"id:{message_id}", *others, f"stat:{state}"])
        receipt = parse_receipt_text(text)
        assert receipt is not None
        self.assertEqual(receipt.message_id, message_id)
        self.assertEqual(receipt.state, state)
        self.assertEqual(receipt.error, "000")


class RobustnessTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=200))
    def test_any_text_parses_or_is_none(self, text: str) -> None:
        """The parser never raises; what it returns has an id and a state."""
        receipt = parse_receipt_text(text)
        if receipt is not None:
            self.assertTrue(receipt.message_id)
            self.assertTrue(receipt.state)


class PDUReceiptTests(SynchronousTestCase):
    def test_receipt_from_tlvs_only(self) -> None:
        """Both TLVs make a receipt whatever esm_class and text say."""
        pdu = DeliverSM(
            sequence_number=1,
            short_message=b"not a receipt",
            tlvs={Tag.RECEIPTED_MESSAGE_ID: "abc", Tag.MESSAGE_STATE: 5},
        )
        self.assertTrue(is_receipt(pdu))
        self.assertEqual(
            receipt_from_pdu(pdu),
            DeliveryReceipt(message_id="abc", state="UNDELIVERABLE", status=D.FAILED),
        )

    def test_tlvs_win_over_text(self) -> None:
        """TLV id and state win; the text adds the other fields."""
        pdu = DeliverSM(
            sequence_number=1,
            esm_class=0x04,
            short_message=STANDARD.replace("DELIVRD", "ENROUTE").encode(),
            tlvs={Tag.RECEIPTED_MESSAGE_ID: "75BCD15", Tag.MESSAGE_STATE: 2},
        )
        receipt = receipt_from_pdu(pdu)
        assert receipt is not None
        self.assertEqual(receipt.message_id, "75BCD15")
        self.assertEqual(receipt.state, "DELIVERED")
        self.assertEqual(receipt.status, D.DELIVERED)
        self.assertEqual(receipt.error, "000")
        self.assertEqual(receipt.done_date, "2501011201")

    def test_network_error_code(self) -> None:
        """network_error_code's error part becomes the receipt error."""
        pdu = DeliverSM(
            sequence_number=1,
            tlvs={
                Tag.RECEIPTED_MESSAGE_ID: "abc",
                Tag.MESSAGE_STATE: 5,
                Tag.NETWORK_ERROR_CODE: b"\x03\x00\x22",
            },
        )
        receipt = receipt_from_pdu(pdu)
        assert receipt is not None
        self.assertEqual(receipt.error, "34")
        self.assertEqual(parse_network_error_code(b"\x03\x00\x22"), (3, 34))
        self.assertIsNone(parse_network_error_code(b"\x03"))
        self.assertIsNone(parse_network_error_code(None))

    def test_receipt_from_text(self) -> None:
        """esm_class 0x04 and a text receipt in short_message."""
        pdu = DeliverSM(
            sequence_number=1, esm_class=0x04, short_message=STANDARD.encode()
        )
        receipt = receipt_from_pdu(pdu)
        assert receipt is not None
        self.assertEqual(receipt.message_id, "0123456789")
        self.assertEqual(receipt.status, D.DELIVERED)

    def test_receipt_in_message_payload(self) -> None:
        """A data_sm receipt whose text is in message_payload."""
        pdu = DataSM(
            sequence_number=1,
            esm_class=0x04,
            tlvs={Tag.MESSAGE_PAYLOAD: b"id:9 stat:EXPIRED"},
        )
        receipt = receipt_from_pdu(pdu)
        assert receipt is not None
        self.assertEqual((receipt.message_id, receipt.status), ("9", D.FAILED))

    def test_text_receipts_need_esm_class(self) -> None:
        """Without the esm_class flag a receipt-like text is an MO message,
        unless use_esm_class is off."""
        pdu = DeliverSM(sequence_number=1, short_message=STANDARD.encode())
        self.assertFalse(is_receipt(pdu))
        self.assertIsNone(receipt_from_pdu(pdu))
        receipt = receipt_from_pdu(pdu, use_esm_class=False)
        assert receipt is not None
        self.assertEqual(receipt.message_id, "0123456789")

    def test_flagged_but_unreadable(self) -> None:
        """esm_class says receipt but the text is not one: None."""
        pdu = DeliverSM(sequence_number=1, esm_class=0x04, short_message=b"\xff\xfe")
        self.assertTrue(is_receipt(pdu))
        self.assertIsNone(receipt_from_pdu(pdu))

    def test_plain_mo_is_not_a_receipt(self) -> None:
        """An ordinary MO message is not a receipt."""
        pdu = DeliverSM(sequence_number=1, short_message=b"hello")
        self.assertIsNone(receipt_from_pdu(pdu))
        self.assertFalse(is_receipt(DeliverSM(sequence_number=1, esm_class=0x40)))


class MessageIdTests(SynchronousTestCase):
    def test_verbatim(self) -> None:
        """By default ids only lose surrounding blanks and NULs."""
        self.assertEqual(normalise_message_id(" abC1\x00"), "abC1")
        self.assertEqual(normalise_message_id("007"), "007")

    def test_hex_and_decimal_meet(self) -> None:
        """A hex id and the same number in decimal give the same key."""
        self.assertEqual(normalise_message_id("75BCD15", IdBase.HEX), "123456789")
        self.assertEqual(normalise_message_id("75bcd15", "hex"), "123456789")
        self.assertEqual(normalise_message_id("0x75BCD15", "hex"), "123456789")
        self.assertEqual(normalise_message_id("0123456789", "decimal"), "123456789")

    def test_non_numbers_stay_verbatim(self) -> None:
        """An id that is not a number in the configured base is kept."""
        uuid = "ee87583d-8f11-4292-8f8f-d4de88e3fdaa"
        self.assertEqual(normalise_message_id(uuid, "hex"), uuid)
        self.assertEqual(normalise_message_id("12ab", "decimal"), "12ab")

    def test_normaliser(self) -> None:
        """Kannel-style: hex in submit_sm_resp, decimal in receipts."""
        normaliser = MessageIdNormaliser("hex", "decimal")
        self.assertEqual(
            normaliser.from_submit_sm_resp("075BCD15"),
            normaliser.from_receipt("123456789"),
        )
        default = MessageIdNormaliser()
        self.assertEqual(default.from_receipt("ab"), default.from_submit_sm_resp("ab"))
        self.assertNotEqual(
            default.from_receipt("0A"), default.from_submit_sm_resp("10")
        )
        self.assertRaises(ValueError, MessageIdNormaliser, "octal")

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, 2**64), st.integers(0, 4), st.booleans())
    def test_any_number_correlates(self, number: int, zeros: int, upper: bool) -> None:
        """hex/decimal correlation holds for any id, padding and case."""
        hex_id = "0" * zeros + format(number, "X" if upper else "x")
        decimal_id = "0" * zeros + str(number)
        normaliser = MessageIdNormaliser(IdBase.HEX, IdBase.DECIMAL)
        self.assertEqual(
            normaliser.from_submit_sm_resp(hex_id), normaliser.from_receipt(decimal_id)
        )
