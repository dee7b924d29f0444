"""Text encodings, long-message splitting and MO multipart reassembly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from junebug.transports.smpp.codec import (
    DataCodings,
    MultipartInfo,
    MultipartMethod,
    PartFields,
    Segment,
    SplitError,
    UDHError,
    UnknownDataCodingError,
    build_udh,
    choose_encoding,
    concatenation,
    decode_parts,
    encode_parts,
    lookup_codec,
    message_content,
    multipart_info,
    parse_udh,
    part_capacity,
    single_capacity,
    split_message,
)
from junebug.transports.smpp.gsm0338 import GSM_CHARACTERS
from junebug.transports.smpp.pdu import DataSM, DeliverSM, Tag, TLVValue

M = MultipartMethod

# Text mixing GSM basic and extension characters, Latin-1, other BMP
# characters and characters outside the BMP (surrogate pairs in UTF-16).
mixed_chars = st.one_of(
    st.sampled_from(sorted(GSM_CHARACTERS)),
    st.sampled_from("€[]{}~^|\\"),
    st.characters(min_codepoint=0x20, max_codepoint=0xFF),
    st.characters(min_codepoint=0x100, max_codepoint=0xD7FF),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1F6FF),
)
mixed_text = st.text(mixed_chars, max_size=300)
# Hypothesis favours short text; repeat a run to reach many parts as well.
long_text = st.tuples(
    st.text(mixed_chars, min_size=1, max_size=40),
    st.integers(1, 60),
    st.text(mixed_chars, max_size=40),
).map(lambda t: t[0] * t[1] + t[2])


class CodecTests(SynchronousTestCase):
    def test_default_mapping(self) -> None:
        """data_coding values of SMPP 3.4 5.2.19 map to their encodings."""
        codings = DataCodings()
        self.assertEqual(codings.encode("@", 0), b"\x00")
        self.assertEqual(codings.encode("@", 1), b"@")
        self.assertEqual(codings.encode("é", 3), b"\xe9")
        self.assertEqual(codings.encode("é", 8), b"\x00\xe9")
        self.assertEqual(codings.decode(b"\xe4", 6), "ф")
        self.assertEqual(codings.decode(b"\xe0", 7), "א")
        self.assertIsNone(codings.codec_for(2))
        self.assertIsNone(codings.codec_for(4))
        self.assertRaises(UnknownDataCodingError, codings.decode, b"x", 4)
        self.assertRaises(UnknownDataCodingError, codings.encode, "x", 2)

    def test_ucs2_surrogate_pairs(self) -> None:
        """UCS-2 (UTF-16-BE) carries characters outside the BMP as pairs."""
        codings = DataCodings()
        self.assertEqual(codings.encode("😀", 8), bytes.fromhex("d83dde00"))
        self.assertEqual(codings.decode(bytes.fromhex("d83dde00"), 8), "😀")
        self.assertRaises(UnicodeDecodeError, codings.decode, b"\xd8\x3d", 8)
        self.assertRaises(UnicodeDecodeError, codings.decode, b"\x00", 8)

    def test_overrides_accept_digit_strings(self) -> None:
        """Override keys may be ints or digit strings, as config gives them."""
        codings = DataCodings({"0": "latin-1", 2: "utf-8"})
        self.assertEqual(codings.decode(b"\xe9", 0), "é")
        self.assertEqual(codings.decode(b"\xc3\xa9", 2), "é")
        self.assertEqual(codings.names[0], "latin-1")

    def test_bad_overrides_fail_early(self) -> None:
        """Unknown codecs and non-numeric or out-of-range keys are refused."""
        self.assertRaises(LookupError, DataCodings, {0: "no-such-codec"})
        self.assertRaises(ValueError, DataCodings, {"zero": "latin-1"})
        self.assertRaises(ValueError, DataCodings, {256: "latin-1"})

    def test_codec_names(self) -> None:
        """gsm0338 and ucs2 are known by several spellings."""
        self.assertEqual(lookup_codec("GSM0338").name, "gsm0338")
        self.assertEqual(lookup_codec("UTF_16_BE").name, "ucs2")
        self.assertEqual(lookup_codec("utf-16be").name, "ucs2")
        self.assertEqual(lookup_codec("latin1").encode("é", "strict"), b"\xe9")

    def test_gsm_data_coding_schemes(self) -> None:
        """Unmapped values above 0x0F are read as GSM 03.38 DCS groups."""
        codings = DataCodings()
        gsm = lookup_codec("gsm0338")
        ucs2 = lookup_codec("ucs2")
        self.assertIs(codings.codec_for(0x10), gsm)  # class 0, GSM 7-bit
        self.assertIs(codings.codec_for(0x18), ucs2)  # class 0, UCS-2
        self.assertIsNone(codings.codec_for(0x14))  # 8-bit data
        self.assertIsNone(codings.codec_for(0x30))  # compressed
        self.assertIs(codings.codec_for(0xF0), gsm)
        self.assertIsNone(codings.codec_for(0xF4))
        self.assertIs(codings.codec_for(0xC0), gsm)
        self.assertIs(codings.codec_for(0xE0), ucs2)
        self.assertIsNone(codings.codec_for(0x80))

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=300))
    def test_ucs2_round_trip(self, text: str) -> None:
        """Any text (without lone surrogates) round-trips through UCS-2."""
        codings = DataCodings()
        self.assertEqual(codings.decode(codings.encode(text, 8), 8), text)

    @settings(max_examples=200, deadline=None)
    @given(st.text(st.characters(max_codepoint=0xFF), max_size=300))
    def test_latin1_round_trip(self, text: str) -> None:
        """Any Latin-1 text round-trips through data_coding 3."""
        codings = DataCodings()
        self.assertEqual(codings.decode(codings.encode(text, 3), 3), text)

    @settings(max_examples=200, deadline=None)
    @given(mixed_text)
    def test_choose_encoding_never_mangles(self, text: str) -> None:
        """The chosen encoding always carries the text unchanged."""
        codings = DataCodings()
        for prefer in (0, (3, 0), (1,)):
            data_coding = choose_encoding(text, prefer)
            decoded = codings.decode(codings.encode(text, data_coding), data_coding)
            self.assertEqual(decoded, text)

    def test_choose_encoding(self) -> None:
        """GSM when possible, else UCS-2; preferences are tried in order."""
        self.assertEqual(choose_encoding("Hello €"), 0)
        self.assertEqual(choose_encoding("ça"), 8)
        self.assertEqual(choose_encoding("ça", prefer=(0, 3)), 3)
        self.assertEqual(choose_encoding("😀", prefer=(0, 3)), 8)
        self.assertEqual(choose_encoding("abc", prefer=(3, 0)), 3)
        self.assertEqual(choose_encoding("abc", prefer=4), 8)
        overridden = DataCodings({0: "latin-1"})
        self.assertEqual(choose_encoding("ç", 0, overridden), 0)


class SplitTests(SynchronousTestCase):
    def test_single_sms_is_one_part(self) -> None:
        """160 GSM septets, 140 octets or 70 UCS-2 characters fit one SMS."""
        for method in (M.UDH, M.UDH16, M.SAR):
            self.assertEqual(len(split_message("a" * 160, 0, method)), 1)
            self.assertEqual(len(split_message("é" * 140, 3, method)), 1)
            self.assertEqual(len(split_message("ç" * 70, 8, method)), 1)
            self.assertEqual(len(split_message("€" * 80, 0, method)), 1)
            self.assertEqual(len(split_message("€" * 81, 0, method)), 2)

    def test_part_sizes(self) -> None:
        """Parts carry 153/152 septets, 134/133 octets, 67/66 UCS-2 units."""
        sizes = [len(s.text) for s in split_message("a" * 161, 0, M.UDH)]
        self.assertEqual(sizes, [153, 8])
        sizes = [len(s.text) for s in split_message("a" * 161, 0, M.UDH16)]
        self.assertEqual(sizes, [152, 9])
        sizes = [len(s.text) for s in split_message("a" * 161, 0, M.SAR)]
        self.assertEqual(sizes, [152, 9])
        sizes = [len(s.text) for s in split_message("é" * 141, 3, M.UDH)]
        self.assertEqual(sizes, [134, 7])
        sizes = [len(s.text) for s in split_message("é" * 141, 3, M.UDH16)]
        self.assertEqual(sizes, [133, 8])
        sizes = [len(s.text) for s in split_message("ç" * 71, 8, M.UDH)]
        self.assertEqual(sizes, [67, 4])
        sizes = [len(s.text) for s in split_message("ç" * 71, 8, M.SAR)]
        self.assertEqual(sizes, [66, 5])

    def test_ia5_counts_gsm_septets(self) -> None:
        """IA5 text is sized as the GSM text it becomes: '[' takes two."""
        self.assertEqual(len(split_message("a" * 160, 1, M.UDH)), 1)
        self.assertEqual(len(split_message("[" * 81, 1, M.UDH)), 2)
        self.assertRaises(UnicodeEncodeError, split_message, "é", 1, M.UDH)

    def test_escape_pairs_are_not_split(self) -> None:
        """A part boundary never falls inside a GSM escape pair."""
        text = "a" * 152 + "€" + "b" * 10
        segments = split_message(text, 0, M.UDH)
        self.assertEqual([s.text for s in segments], ["a" * 152, "€" + "b" * 10])
        self.assertEqual(len(segments[0].data), 152)

    def test_surrogate_pairs_are_not_split(self) -> None:
        """A part boundary never falls inside a UTF-16 surrogate pair."""
        text = "a" * 66 + "😀" * 3
        segments = split_message(text, 8, M.UDH)
        self.assertEqual([s.text for s in segments], ["a" * 66, "😀" * 3])

    def test_stateful_codec_parts_fit(self) -> None:
        """ISO-2022-JP parts are measured whole, escapes included."""
        text = "日本語" * 60
        for segment in split_message(text, 5, M.UDH):
            self.assertLessEqual(len(segment.data), 134)
        joined = "".join(s.text for s in split_message(text, 5, M.UDH))
        self.assertEqual(joined, text)

    def test_single_pdu_methods(self) -> None:
        """short_message holds 254 octets; message_payload 65535."""
        self.assertEqual(len(split_message("a" * 254, 0, M.SHORT_MESSAGE)), 1)
        self.assertRaises(SplitError, split_message, "a" * 255, 0, M.SHORT_MESSAGE)
        self.assertEqual(len(split_message("a" * 5000, 0, M.MESSAGE_PAYLOAD)), 1)
        self.assertRaises(
            SplitError, split_message, "a" * 0x10000, 0, M.MESSAGE_PAYLOAD
        )

    def test_too_many_parts(self) -> None:
        """More than 255 parts cannot be numbered."""
        self.assertEqual(len(split_message("a" * 153 * 255, 0, M.UDH)), 255)
        self.assertRaises(SplitError, split_message, "a" * (153 * 255 + 1), 0, M.UDH)

    def test_empty_and_binary(self) -> None:
        """Empty text is one empty part; binary data_codings cannot split."""
        self.assertEqual(split_message("", 0, M.UDH), [Segment("", b"")])
        self.assertRaises(UnknownDataCodingError, split_message, "a", 4, M.UDH)

    def test_encode_parts_udh(self) -> None:
        """UDH parts lead with 05 00 03 (or 06 08 04) and set UDHI."""
        segments = [Segment("a", b"a"), Segment("b", b"b")]
        self.assertEqual(
            encode_parts(segments, M.UDH, ref=0x1FF),
            [
                PartFields(bytes.fromhex("050003ff0201") + b"a", 0x40),
                PartFields(bytes.fromhex("050003ff0202") + b"b", 0x40),
            ],
        )
        self.assertEqual(
            encode_parts(segments, M.UDH16, ref=0x1234)[1],
            PartFields(bytes.fromhex("06080412340202") + b"b", 0x40),
        )

    def test_encode_parts_sar(self) -> None:
        """SAR parts carry the reference, total and number as TLVs."""
        segments = [Segment("a", b"a"), Segment("b", b"b")]
        self.assertEqual(
            encode_parts(segments, M.SAR, ref=0x12345)[1],
            PartFields(
                b"b",
                tlvs={
                    Tag.SAR_MSG_REF_NUM: 0x2345,
                    Tag.SAR_TOTAL_SEGMENTS: 2,
                    Tag.SAR_SEGMENT_SEQNUM: 2,
                },
            ),
        )

    def test_encode_single_parts(self) -> None:
        """One part needs no UDH or SAR; message_payload only when long."""
        one = [Segment("a", b"a")]
        for method in M:
            self.assertEqual(encode_parts(one, method), [PartFields(b"a")])
        self.assertEqual(
            encode_parts(one, M.MESSAGE_PAYLOAD, always_payload=True),
            [PartFields(b"", tlvs={Tag.MESSAGE_PAYLOAD: b"a"})],
        )
        long = [Segment("a" * 300, b"a" * 300)]
        self.assertEqual(
            encode_parts(long, M.MESSAGE_PAYLOAD),
            [PartFields(b"", tlvs={Tag.MESSAGE_PAYLOAD: b"a" * 300})],
        )
        two = [Segment("a", b"a"), Segment("b", b"b")]
        self.assertRaises(SplitError, encode_parts, two, M.SHORT_MESSAGE)

    def test_build_udh_validates(self) -> None:
        """Part numbers must lie within 1..total <= 255."""
        self.assertRaises(ValueError, build_udh, 1, 2, 3)
        self.assertRaises(ValueError, build_udh, 1, 2, 0)
        self.assertRaises(ValueError, build_udh, 1, 256, 1)

    @settings(max_examples=200, deadline=None)
    @given(
        st.one_of(mixed_text, long_text),
        st.sampled_from(list(M)),
        st.sampled_from([0, 1, 3, 8]),
    )
    def test_split_then_reassemble(
        self, text: str, method: MultipartMethod, preferred: int
    ) -> None:
        """Any text, any method: parts join to the text, fit their capacity,
        decode alone (no broken escape or surrogate), and reassemble."""
        codings = DataCodings()
        data_coding = choose_encoding(text, preferred)
        codec = codings.codec_for(data_coding)
        assert codec is not None
        try:
            segments = split_message(text, data_coding, method)
        except SplitError:
            self.assertEqual(method, M.SHORT_MESSAGE)
            return
        self.assertEqual("".join(s.text for s in segments), text)
        capacity = part_capacity(codec, method)
        if len(segments) == 1 and method in (M.UDH, M.UDH16, M.SAR):
            capacity = single_capacity(codec)
        for segment in segments:
            self.assertEqual(codings.decode(segment.data, data_coding), segment.text)
            self.assertEqual(codings.encode(segment.text, data_coding), segment.data)
            self.assertLessEqual(len(segment.data), capacity)
        if len(segments) > 1:
            self.assertTrue(all(s.text for s in segments))

        result = None
        received: dict[int, tuple[bytes, int]] = {}
        fields = encode_parts(segments, method, ref=77)
        for part in reversed(fields):
            pdu = DeliverSM(
                sequence_number=1,
                esm_class=part.esm_class,
                data_coding=data_coding,
                short_message=part.short_message,
                tlvs=part.tlvs,
            )
            info = multipart_info(pdu)
            if info is None:
                self.assertEqual(len(fields), 1)
                result = codings.decode(message_content(pdu), data_coding)
            else:
                self.assertIsNone(result)
                self.assertEqual((info.ref, info.total), (77, len(fields)))
                received[info.seqnum] = (info.data, data_coding)
                if len(received) == info.total:
                    result = decode_parts(
                        [received[n] for n in sorted(received)], codings
                    )
        self.assertEqual(result, text)


class UDHTests(SynchronousTestCase):
    def test_parse_8_bit_concatenation(self) -> None:
        """05 00 03 ref total n."""
        elements, rest = parse_udh(bytes.fromhex("0500032a0301") + b"hi")
        self.assertEqual(rest, b"hi")
        concat = concatenation(elements)
        assert concat is not None
        self.assertEqual((concat.ref, concat.total, concat.seqnum), (0x2A, 3, 1))

    def test_parse_16_bit_concatenation_with_ports(self) -> None:
        """06 08 04 ref ref total n, after a port addressing element."""
        udh = bytes.fromhex("0c 0504 0b841234 0804 abcd0302")
        elements, rest = parse_udh(udh + b"x")
        self.assertEqual(rest, b"x")
        self.assertEqual([e.iei for e in elements], [0x05, 0x08])
        concat = concatenation(elements)
        assert concat is not None
        self.assertEqual((concat.ref, concat.total, concat.seqnum), (0xABCD, 3, 2))

    def test_no_concatenation(self) -> None:
        """A UDH without a concatenation element (or with a malformed one)."""
        elements, _ = parse_udh(bytes.fromhex("04 0502 0b84") + b"x")
        self.assertIsNone(concatenation(elements))
        elements, _ = parse_udh(bytes.fromhex("04 0002 0102"))
        self.assertIsNone(concatenation(elements))

    def test_malformed_udh(self) -> None:
        """A UDH running past the message or an element past the UDH."""
        self.assertRaises(UDHError, parse_udh, b"")
        self.assertRaises(UDHError, parse_udh, bytes.fromhex("0500"))
        self.assertRaises(UDHError, parse_udh, bytes.fromhex("03 0003 01 02"))
        self.assertRaises(UDHError, parse_udh, bytes.fromhex("01 00"))

    def test_multipart_info_from_udh(self) -> None:
        """deliver_sm with UDHI: the reference comes from the UDH."""
        pdu = DeliverSM(
            sequence_number=1,
            esm_class=0x40,
            short_message=bytes.fromhex("0500032a0201") + b"hi",
        )
        self.assertEqual(multipart_info(pdu), MultipartInfo(0x2A, 2, 1, b"hi"))
        self.assertEqual(message_content(pdu), b"hi")

    def test_multipart_info_from_sar(self) -> None:
        """SAR TLVs win, with content from message_payload if present."""
        tlvs: dict[int, TLVValue] = {
            Tag.SAR_MSG_REF_NUM: 300,
            Tag.SAR_TOTAL_SEGMENTS: 2,
            Tag.SAR_SEGMENT_SEQNUM: 2,
            Tag.MESSAGE_PAYLOAD: b"payload",
        }
        pdu = DataSM(sequence_number=1, tlvs=tlvs)
        self.assertEqual(multipart_info(pdu), MultipartInfo(300, 2, 2, b"payload"))

    def test_single_part_messages(self) -> None:
        """No UDHI and no SAR: not multipart; UDHI without concat neither."""
        self.assertIsNone(multipart_info(DeliverSM(sequence_number=1)))
        plain = DeliverSM(sequence_number=1, short_message=b"hi")
        self.assertIsNone(multipart_info(plain))
        ported = DeliverSM(
            sequence_number=1,
            esm_class=0x40,
            short_message=bytes.fromhex("04 0402 0b84") + b"x",
        )
        self.assertIsNone(multipart_info(ported))
        self.assertEqual(message_content(ported), b"x")
        self.assertIsNone(multipart_info(DeliverSM(sequence_number=1, esm_class=0x40)))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=60))
    def test_arbitrary_udh(self, data: bytes) -> None:
        """Any octets either parse as a UDH or raise UDHError."""
        try:
            elements, rest = parse_udh(data)
        except UDHError:
            return
        self.assertEqual(rest, data[1 + data[0] :])
        self.assertEqual(sum(2 + len(e.data) for e in elements), data[0])

    def test_malformed_udh_in_pdu(self) -> None:
        """A bad UDH in a deliver_sm surfaces as UDHError."""
        pdu = DeliverSM(sequence_number=1, esm_class=0x40, short_message=b"\x09ab")
        self.assertRaises(UDHError, multipart_info, pdu)
        self.assertRaises(UDHError, message_content, pdu)
