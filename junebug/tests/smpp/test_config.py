"""Tests for the ``smpp`` channel config."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from junebug.converter import structure
from junebug.errors import ConfigError
from junebug.transports.smpp.codec import GSM0338, MultipartMethod
from junebug.transports.smpp.config import SmppConfig
from junebug.transports.smpp.pdu import BindReceiver, BindTransceiver, BindTransmitter

BASE = {
    "twisted_endpoint": "tcp:host=smsc:port=2775",
    "system_id": "sys",
    "password": "pw",
}


def config(**overrides: Any) -> SmppConfig:
    data = dict(BASE)
    data.update(overrides)
    return structure(data, SmppConfig)


class SmppConfigTests(SynchronousTestCase):
    def assertConfigError(self, fragment: str, **overrides: Any) -> str:
        with self.assertRaises(ConfigError) as caught:
            config(**overrides)
        message = str(caught.exception)
        self.assertIn(fragment, message)
        return message

    def test_defaults(self) -> None:
        """The defaults are vumi's, plus ours for options vumi lacked."""
        cfg = config()
        self.assertIs(cfg.bind_class, BindTransceiver)
        self.assertEqual(cfg.interface_version_number, 0x34)
        self.assertEqual(cfg.smpp_bind_timeout, 30.0)
        self.assertEqual(cfg.smpp_enquire_link_interval, 55.0)
        self.assertEqual(cfg.window_size, 10)
        self.assertEqual(cfg.mt_tps, 0.0)
        self.assertEqual(cfg.throttle_delay, 0.1)
        self.assertEqual((cfg.dest_addr_ton, cfg.dest_addr_npi), (0, 1))
        self.assertTrue(cfg.registered_delivery)
        self.assertEqual(cfg.third_party_id_expiry, 604800)
        self.assertEqual(cfg.multipart_method, MultipartMethod.UDH)
        self.assertEqual(cfg.mt_data_coding_preference, [0])
        self.assertIs(cfg.mt_data_codings().codec_for(0), GSM0338)
        self.assertEqual(cfg.endpoint, "tcp:host=smsc:port=2775")

    def test_required_fields(self) -> None:
        """system_id and password are required, and named when missing."""
        with self.assertRaises(ConfigError) as caught:
            structure({"twisted_endpoint": "tcp:host=a:port=1"}, SmppConfig)
        self.assertIn("system_id", str(caught.exception))

    def test_legacy_host_and_port(self) -> None:
        """host and port become a client endpoint description."""
        cfg = structure(
            {"host": "::1", "port": 2775, "system_id": "s", "password": "p"}, SmppConfig
        )
        self.assertEqual(cfg.endpoint, "tcp:host=\\:\\:1:port=2775")

    def test_endpoint_required(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            structure({"system_id": "s", "password": "p"}, SmppConfig)
        self.assertIn("twisted_endpoint", str(caught.exception))

    def test_bad_endpoint(self) -> None:
        self.assertConfigError("twisted_endpoint", twisted_endpoint="bogus:thing")

    def test_bad_port(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            structure(
                {"host": "a", "port": 70000, "system_id": "s", "password": "p"},
                SmppConfig,
            )
        self.assertIn("port", str(caught.exception))

    def test_bind_types(self) -> None:
        """Each bind type, and vumi's abbreviations, picks its bind PDU."""
        for name, cls in [
            ("transceiver", BindTransceiver),
            ("transmitter", BindTransmitter),
            ("receiver", BindReceiver),
            ("TX", BindTransmitter),
            ("rx", BindReceiver),
        ]:
            self.assertIs(config(bind_type=name.lower()).bind_class, cls)
        self.assertConfigError("bind_type", bind_type="both")

    def test_field_lengths(self) -> None:
        """C-Octet string limits are checked at config time."""
        self.assertConfigError("system_id", system_id="x" * 16)
        self.assertConfigError("system_type", system_type="x" * 13)
        self.assertConfigError("address_range", address_range="x" * 41)
        self.assertConfigError("service_type", service_type="abcdef")

    def test_long_password_is_cut(self) -> None:
        """As vumi did, only the first 8 characters of the password are sent."""
        self.assertEqual(config(password="0123456789").bind_password, "01234567")

    def test_interface_version(self) -> None:
        self.assertEqual(config(interface_version="33").interface_version_number, 0x33)
        self.assertEqual(config(interface_version="3.4").interface_version_number, 0x34)
        self.assertConfigError("interface_version", interface_version="v34")

    def test_numbers_validated(self) -> None:
        self.assertConfigError("window_size", window_size=0)
        self.assertConfigError("mt_tps", mt_tps=-1)
        self.assertConfigError("smpp_bind_timeout", smpp_bind_timeout=0)
        self.assertConfigError("source_addr_ton", source_addr_ton=256)
        self.assertConfigError("udh_reference_bits", udh_reference_bits=12)
        self.assertConfigError(
            "max_reconnect_delay", initial_reconnect_delay=10, max_reconnect_delay=5
        )

    def test_types_validated(self) -> None:
        """A value of the wrong type names its field."""
        self.assertConfigError("config.window_size", window_size="10")
        self.assertConfigError("config.registered_delivery", registered_delivery=1)

    def test_submit_timeout_may_be_unbounded(self) -> None:
        self.assertIsNone(config(submit_timeout=None).submit_timeout)

    def test_data_coding_overrides(self) -> None:
        """Overrides map data_coding to codec names; unknown codecs are refused."""
        cfg = config(
            data_coding_overrides={"0": "latin-1"},
            mo_data_coding_overrides={"4": "utf-8"},
        )
        self.assertEqual(cfg.mt_data_codings().decode(b"\xe9", 0), "é")
        self.assertEqual(cfg.mo_data_codings().decode("é".encode(), 4), "é")
        self.assertConfigError(
            "data_coding_overrides", data_coding_overrides={"0": "nope"}
        )
        self.assertConfigError(
            "data_coding_overrides", data_coding_overrides={"x": "ascii"}
        )

    def test_vumi_nested_processor_configs(self) -> None:
        """vumi's nested processor dicts are understood."""
        cfg = config(
            submit_short_message_processor_config={
                "submit_sm_encoding": "latin-1",
                "submit_sm_data_coding": 3,
                "send_multipart_sar": True,
            },
            deliver_short_message_processor_config={
                "data_coding_overrides": {"0": "utf-8"},
                "allow_empty_messages": True,
            },
            delivery_report_processor_config={
                "delivery_report_use_esm_class": False,
                "delivery_report_status_mapping": {"ACKED": "delivered"},
                "delivery_report_regex": r"id:(?P<id>\S+).*stat:(?P<stat>\w+)",
            },
        )
        self.assertEqual(cfg.mt_data_coding_preference, [3])
        self.assertEqual(cfg.mt_data_codings().decode(b"\xe9", 3), "é")
        self.assertEqual(cfg.multipart_method, MultipartMethod.SAR)
        self.assertEqual(cfg.mo_data_codings().decode("é".encode(), 0), "é")
        self.assertTrue(cfg.empty_messages_allowed)
        self.assertFalse(cfg.receipts_use_esm_class)
        self.assertEqual(cfg.receipt_status_mapping, {"ACKED": "delivered"})
        self.assertIsNotNone(cfg.receipt_regex)

    def test_multipart_options(self) -> None:
        self.assertEqual(
            config(udh_reference_bits=16).multipart_method, MultipartMethod.UDH16
        )
        self.assertEqual(
            config(multipart_handling="multipart_sar").multipart_method,
            MultipartMethod.SAR,
        )
        cfg = config(send_long_messages=True)
        self.assertEqual(cfg.multipart_method, MultipartMethod.MESSAGE_PAYLOAD)
        self.assertTrue(cfg.always_payload)
        self.assertConfigError("multipart_handling", multipart_handling="chop")
        self.assertConfigError(
            "cannot be combined",
            submit_short_message_processor_config={
                "send_multipart_sar": True,
                "send_multipart_udh": True,
            },
        )

    def test_receipt_options(self) -> None:
        self.assertConfigError(
            "delivery_report_status_mapping",
            delivery_report_status_mapping={"DELIVRD": "great"},
        )
        self.assertConfigError("delivery_report_regex", delivery_report_regex="(")
        self.assertConfigError("named groups", delivery_report_regex="id:(\\S+)")
        self.assertConfigError("submit_sm_resp_id_base", submit_sm_resp_id_base="octal")
        self.assertConfigError(
            "deliver_sm_decoding_error", deliver_sm_decoding_error="ESME_NOPE"
        )

    def test_ussd_options(self) -> None:
        cfg = config(ussd_session_events={"1": "new", "81": "close"})
        self.assertEqual(cfg.ussd_session_events, {"1": "new", "81": "close"})
        self.assertConfigError(
            "ussd_session_events", ussd_session_events={"01": "begin"}
        )
        self.assertConfigError("ussd_session_events", ussd_session_events={"zz": "new"})
        self.assertConfigError("ussd_close_service_op", ussd_close_service_op="x17")

    def test_unknown_and_vumi_only_keys_are_ignored(self) -> None:
        """Keys of vumi's that have no effect here are accepted."""
        cfg = config(
            redis_manager={"host": "redis"},
            codec_class="vumi.codecs.VumiCodec",
            submit_sm_expiry=10,
            delivery_report_processor="vumi.transports.smpp.processors.Foo",
        )
        self.assertEqual(cfg.submit_sm_expiry, 10)
