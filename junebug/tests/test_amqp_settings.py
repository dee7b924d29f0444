"""AmqpSettings from URLs (RabbitMQ's URI spec) and the endpoint it builds."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet import error
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IProtocol, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from junebug.amqp.endpoints import InOrderEndpoint, amqp_endpoint, tls_creator
from junebug.amqp.settings import AmqpSettings, TlsSettings
from junebug.config import load_config
from junebug.errors import ConfigError
from junebug.tests.rabbitmq_node import self_signed_certificate


class FromUrlTests(SynchronousTestCase):
    def test_plain_url(self) -> None:
        s = AmqpSettings.from_url("amqp://user:p%40ss@rabbit:5673/%2Fjb")
        self.assertEqual(
            (s.host, s.port, s.vhost, s.username, s.password),
            ("rabbit", 5673, "/jb", "user", "p@ss"),
        )
        self.assertIsNone(s.tls)
        self.assertEqual(s.addresses, (("rabbit", 5673),))

    def test_defaults(self) -> None:
        s = AmqpSettings.from_url("amqp://rabbit")
        self.assertEqual((s.port, s.vhost, s.username), (5672, "/", "guest"))

    def test_query_options_are_applied(self) -> None:
        """heartbeat and the rest were dropped before; now they count."""
        s = AmqpSettings.from_url(
            "amqp://rabbit/?heartbeat=15&connection_timeout=2500"
            "&channel_max=32&frame_max=65536"
        )
        self.assertEqual(s.heartbeat, 15)
        self.assertEqual(s.connect_timeout, 2.5)
        self.assertEqual((s.channel_max, s.frame_max), (32, 65536))

    def test_amqps_with_certificate_options(self) -> None:
        s = AmqpSettings.from_url(
            "amqps://rabbit/?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem"
            "&verify=verify_none&server_name_indication=mq.example"
        )
        self.assertEqual(s.port, 5671)
        self.assertEqual(
            s.tls,
            TlsSettings(
                ca_file="/ca.pem",
                cert_file="/c.pem",
                key_file="/k.pem",
                verify=False,
                server_name="mq.example",
            ),
        )
        self.assertEqual(AmqpSettings.from_url("amqps://rabbit").tls, TlsSettings())

    def test_several_hosts_in_order(self) -> None:
        s = AmqpSettings.from_url("amqp://u:p@a:5001,b,[::1]:5003/v")
        self.assertEqual(s.addresses, (("a", 5001), ("b", 5672), ("::1", 5003)))
        self.assertEqual((s.username, s.password, s.vhost), ("u", "p", "v"))
        self.assertEqual(s.describe(), "a:5001,b:5672,::1:5003/v")

    def test_bad_urls_say_why(self) -> None:
        for url, text in (
            ("http://rabbit/", "not an amqp"),
            ("amqp://rabbit/?hearbeat=5", "unknown AMQP URL option 'hearbeat'"),
            ("amqp://rabbit/?heartbeat=soon", "heartbeat must be a whole number"),
            ("amqp://rabbit/?heartbeat=-1", "must not be negative"),
            ("amqp://rabbit/?cacertfile=/ca.pem", "TLS options need an amqps"),
            ("amqps://rabbit/?verify=maybe", "verify must be"),
            ("amqp://rabbit:port/", "bad host"),
        ):
            with self.assertRaises(ValueError) as caught:
                AmqpSettings.from_url(url)
            self.assertIn(text, str(caught.exception), url)

    def test_errors_never_show_the_password(self) -> None:
        with self.assertRaises(ValueError) as caught:
            AmqpSettings.from_url("http://user:secret@rabbit/")
        self.assertNotIn("secret", str(caught.exception))


class _Refusing:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        self.log.append(self.name)
        return fail(error.ConnectionRefusedError(self.name))


class _Accepting(_Refusing):
    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        self.log.append(self.name)
        return succeed(Protocol())


class EndpointTests(SynchronousTestCase):
    def test_hosts_are_tried_in_order(self) -> None:
        log: list[str] = []
        endpoint = InOrderEndpoint(
            [_Refusing(log, "a"), _Accepting(log, "b"), _Accepting(log, "c")]
        )
        self.successResultOf(endpoint.connect(Factory()))
        self.assertEqual(log, ["a", "b"])

    def test_the_last_error_when_every_host_fails(self) -> None:
        log: list[str] = []
        endpoint = InOrderEndpoint([_Refusing(log, "a"), _Refusing(log, "b")])
        failure = self.failureResultOf(endpoint.connect(Factory()))
        failure.trap(error.ConnectionRefusedError)
        self.assertIn("b", str(failure.value))

    def test_cancelling_stops_trying(self) -> None:
        reactor = MemoryReactorClock()
        settings = AmqpSettings.from_url("amqp://10.0.0.1:1,10.0.0.2:2/")
        d = amqp_endpoint(reactor, settings).connect(Factory())
        self.assertEqual(len(reactor.tcpClients), 1)
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(len(reactor.tcpClients), 1)

    def test_amqp_endpoint_dials_every_address(self) -> None:
        reactor = MemoryReactorClock()
        settings = AmqpSettings.from_url("amqp://10.0.0.1:1,10.0.0.2:2/")
        d = amqp_endpoint(reactor, settings).connect(Factory())
        # (The memory reactor resolves every name to 127.0.0.1.)
        self.assertEqual([c[1] for c in reactor.tcpClients], [1])
        _, _, factory, _, _ = reactor.tcpClients[0]
        factory.clientConnectionFailed(
            reactor.connectors[0], Failure(error.ConnectionRefusedError())
        )
        reactor.advance(1)
        self.assertEqual([c[1] for c in reactor.tcpClients], [1, 2])
        self.assertNoResult(d)

    def test_unreadable_tls_files_are_config_errors(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            tls_creator(TlsSettings(ca_file="/nonexistent/ca.pem"), "rabbit")
        self.assertIn("/nonexistent/ca.pem", str(caught.exception))
        with self.assertRaises(ConfigError):
            tls_creator(TlsSettings(key_file="/k.pem"), "rabbit")

    def test_client_certificate_loads(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="jb-tls-"))
        self.addCleanup(shutil.rmtree, directory, True)
        cert = self_signed_certificate(directory)
        key = directory / "key.pem"
        for verify in (True, False):
            tls_creator(
                TlsSettings(
                    ca_file=str(cert),
                    cert_file=str(cert),
                    key_file=str(key),
                    verify=verify,
                ),
                "localhost",
            )


class JbConfigTests(SynchronousTestCase):
    def test_amqp_url_is_checked_when_jb_starts(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            load_config(None, {"JUNEBUG_AMQP_URL": "amqp://rabbit/?bogus=1"}, {})
        self.assertIn("amqp_url", str(caught.exception))
        self.assertIn("bogus", str(caught.exception))
        config = load_config(None, {"JUNEBUG_AMQP_URL": "amqps://a,b/jb"}, {})
        self.assertEqual(config.amqp_url, "amqps://a,b/jb")

    def test_one_channel_max_from_the_config_key_or_the_url(self) -> None:
        """``amqp.channel_max`` and an ``amqp_url``'s ``channel_max`` option
        feed the one setting; the URL's option wins when both are given."""
        config = load_config(None, {}, {"amqp": {"channel_max": 16}})
        self.assertEqual(config.amqp.settings().channel_max, 16)
        self.assertEqual(config.amqp.settings("amqp://rabbit/jb").channel_max, 16)
        from_url = config.amqp.settings("amqp://rabbit/jb?channel_max=32")
        self.assertEqual(from_url.channel_max, 32)
        self.assertEqual((from_url.host, from_url.vhost), ("rabbit", "jb"))
        fields = config.amqp.settings()
        self.assertEqual(
            (fields.host, fields.port, fields.heartbeat),
            (config.amqp.hostname, config.amqp.port, config.amqp.heartbeat),
        )
