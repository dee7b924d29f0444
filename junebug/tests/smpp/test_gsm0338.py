"""The GSM 03.38 default alphabet, unpacked and packed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from junebug.transports.smpp.gsm0338 import (
    BASIC_TABLE,
    EXTENSION_TABLE,
    GSM_CHARACTERS,
    gsm_decode,
    gsm_encode,
    gsm_septet_count,
    is_gsm_encodable,
    pack_septets,
    unpack_septets,
)

gsm_text = st.text(st.sampled_from(sorted(GSM_CHARACTERS)), max_size=400)


class TableTests(SynchronousTestCase):
    def test_tables(self) -> None:
        """Spot checks of both tables against TS 23.038."""
        self.assertEqual(len(BASIC_TABLE), 128)
        self.assertEqual(gsm_encode("@£$¥"), b"\x00\x01\x02\x03")
        self.assertEqual(gsm_encode("ΔΩ_"), b"\x10\x15\x11")
        self.assertEqual(gsm_encode("¤¡¿"), b"\x24\x40\x60")
        self.assertEqual(
            gsm_encode("ÄÖÑÜ§äöñüà"),
            bytes(range(0x5B, 0x60)) + bytes(range(0x7B, 0x80)),
        )
        self.assertEqual(gsm_encode("Az09 \n\r"), b"Az09 \n\r")
        self.assertEqual(
            gsm_encode("^{}\\[~]|€\x0c"),
            bytes.fromhex("1b14 1b28 1b29 1b2f 1b3c 1b3d 1b3e 1b40 1b65 1b0a"),
        )
        self.assertEqual(len(EXTENSION_TABLE), 10)

    def test_characters_outside_the_alphabet(self) -> None:
        """Characters outside GSM 03.38 fail strictly, or are replaced."""
        self.assertFalse(is_gsm_encodable("ç"))
        self.assertFalse(is_gsm_encodable("`"))
        self.assertFalse(is_gsm_encodable("\x1b"))
        self.assertTrue(is_gsm_encodable("Ça va €5"))
        error = self.assertRaises(UnicodeEncodeError, gsm_encode, "ab`c")
        self.assertEqual(error.start, 2)
        self.assertEqual(gsm_encode("a`b", "replace"), b"a?b")
        self.assertEqual(gsm_encode("a`b", "ignore"), b"ab")

    def test_septet_count(self) -> None:
        """Extension characters take two septets."""
        self.assertEqual(gsm_septet_count("a€b"), 4)

    def test_decode_escape_corner_cases(self) -> None:
        """Unknown escapes fall back to the basic table; ESC ESC and a trailing
        ESC give a space."""
        self.assertEqual(gsm_decode(b"\x1bA"), "A")
        self.assertEqual(gsm_decode(b"\x1b\x1bA"), " A")
        self.assertEqual(gsm_decode(b"A\x1b"), "A ")

    def test_decode_non_septets(self) -> None:
        """Octets above 0x7F are errors, or replaced, or dropped."""
        self.assertRaises(UnicodeDecodeError, gsm_decode, b"A\x80")
        self.assertRaises(UnicodeDecodeError, gsm_decode, b"\x1b\x80")
        self.assertEqual(gsm_decode(b"A\x80", "replace"), "A\ufffd")
        self.assertEqual(gsm_decode(b"A\x80", "ignore"), "A")

    @settings(max_examples=200, deadline=None)
    @given(gsm_text)
    def test_round_trip(self, text: str) -> None:
        """Any GSM text survives encoding and decoding unchanged."""
        data = gsm_encode(text)
        self.assertEqual(gsm_decode(data), text)
        self.assertTrue(all(octet < 0x80 for octet in data))


class PackingTests(SynchronousTestCase):
    def test_known_packing(self) -> None:
        """The textbook example: "hellohello" packs to E8329BFD4697D9EC37."""
        packed = pack_septets(gsm_encode("hellohello"))
        self.assertEqual(packed, bytes.fromhex("e8329bfd4697d9ec37"))
        self.assertEqual(gsm_decode(unpack_septets(packed, 10)), "hellohello")

    def test_fill_bits(self) -> None:
        """With one fill bit (after a 6-octet UDH) the first septet shifts."""
        self.assertEqual(pack_septets(b"\x41", fill_bits=1), b"\x82")
        self.assertEqual(unpack_septets(b"\x82", fill_bits=1), b"\x41")

    def test_trailing_spare_bits(self) -> None:
        """Seven septets in seven octets: without a count, a spare '@'."""
        packed = pack_septets(b"1234567")
        self.assertEqual(len(packed), 7)
        self.assertEqual(unpack_septets(packed), b"1234567\x00")
        self.assertEqual(unpack_septets(packed, 7), b"1234567")

    def test_invalid_arguments(self) -> None:
        """Bad septets, fill bits or counts raise ValueError."""
        self.assertRaises(ValueError, pack_septets, b"\x80")
        self.assertRaises(ValueError, pack_septets, b"a", 7)
        self.assertRaises(ValueError, unpack_septets, b"a", None, 7)
        self.assertRaises(ValueError, unpack_septets, b"ab", 3)
        self.assertEqual(unpack_septets(b""), b"")

    @settings(max_examples=200, deadline=None)
    @given(
        st.binary(max_size=300).map(lambda b: bytes(x & 0x7F for x in b)),
        st.integers(0, 6),
    )
    def test_pack_round_trip(self, septets: bytes, fill_bits: int) -> None:
        """Packing then unpacking with the septet count is the identity."""
        packed = pack_septets(septets, fill_bits)
        self.assertEqual(len(packed), (len(septets) * 7 + fill_bits + 7) // 8)
        self.assertEqual(unpack_septets(packed, len(septets), fill_bits), septets)
