"""The operator's allow/deny lists of callback networks (#12.9).

Checked when a connection is made, against the address the host resolved to;
the connection then goes to that address, never to the name again.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from junebug.config import JunebugConfig
from junebug.converter import structure
from junebug.errors import ConfigError
from junebug.http.client import HttpClient
from junebug.http.networks import CallbackNetworks, CallbackRefused, GuardedEndpoint
from junebug.testing.http_sink import HttpSink


@implementer(IHostnameResolver)
class FixedResolver:
    """Resolves every name to the given addresses."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    def resolveHostName(
        self, receiver: IResolutionReceiver, host: str, **_: Any
    ) -> Any:
        self.asked.append(host)
        receiver.resolutionBegan(None)  # type: ignore[arg-type]
        for address in self.addresses:
            receiver.addressResolved(IPv4Address("TCP", address, 0))
        receiver.resolutionComplete()
        return None


class CallbackNetworksTests(SynchronousTestCase):
    def test_deny_then_allow(self) -> None:
        networks = CallbackNetworks.from_lists(
            allow=["10.0.0.0/8", "2001:db8::/32"], deny=["10.9.0.0/16"]
        )
        self.assertTrue(networks.enabled)
        self.assertIsNone(networks.refusal("10.1.2.3"))
        self.assertIsNone(networks.refusal("2001:db8::1"))
        self.assertIn("denied", networks.refusal("10.9.1.1") or "")
        self.assertIn("not in an allowed", networks.refusal("127.0.0.1") or "")
        self.assertIn("not in an allowed", networks.refusal("::ffff:127.0.0.1") or "")

    def test_mapped_ipv6_is_judged_as_ipv4(self) -> None:
        networks = CallbackNetworks.from_lists(allow=[], deny=["127.0.0.0/8"])
        self.assertIn("denied", networks.refusal("::ffff:127.0.0.1") or "")
        self.assertIsNone(networks.refusal("192.0.2.1"))

    def test_off_by_default(self) -> None:
        self.assertFalse(CallbackNetworks().enabled)
        config = structure({}, JunebugConfig)
        self.assertFalse(config.callback_networks.enabled)

    def test_bad_network_stops_jb(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            structure({"callback_deny_networks": ["10.0.0.0/33"]}, JunebugConfig)
        self.assertIn("callback_deny_networks", str(caught.exception))


class GuardedEndpointTests(SynchronousTestCase):
    def connect(self, networks: CallbackNetworks, *addresses: str) -> Any:
        self.reactor = MemoryReactorClock()
        resolver = FixedResolver(*addresses)
        endpoint = GuardedEndpoint(
            self.reactor, "hooks.example", 80, networks, resolver=resolver
        )
        return endpoint.connect(Factory.forProtocol(Protocol))

    def test_a_name_resolving_to_a_denied_address_is_refused(self) -> None:
        """The URL's name looks harmless; its address is what counts, and no
        connection is even attempted."""
        networks = CallbackNetworks.from_lists(allow=[], deny=["127.0.0.0/8"])
        d = self.connect(networks, "127.0.0.1")
        failure = self.failureResultOf(d, CallbackRefused)
        self.assertIn("127.0.0.1 is in the denied", str(failure.value))
        self.assertEqual(self.reactor.tcpClients, [])

    def test_connects_to_the_checked_address(self) -> None:
        """The connection goes to the allowed address that was checked (a
        second lookup could answer differently: DNS rebinding)."""
        networks = CallbackNetworks.from_lists(allow=[], deny=["127.0.0.0/8"])
        self.connect(networks, "127.0.0.1", "192.0.2.7")
        [(host, port, *_)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("192.0.2.7", 80))

    def test_a_name_without_addresses_is_refused(self) -> None:
        networks = CallbackNetworks.from_lists(allow=["192.0.2.0/24"], deny=[])
        self.failureResultOf(self.connect(networks), CallbackRefused)


class GuardedClientTests(TestCase):
    async def start_sink(self) -> str:
        sink = HttpSink(reactor)
        self.addCleanup(sink.stop)
        self.sink = sink
        return await sink.start()

    def client(self, **lists: list[str]) -> HttpClient:
        networks = CallbackNetworks.from_lists(
            lists.get("allow", []), lists.get("deny", [])
        )
        http = HttpClient(reactor, networks=networks)
        self.addCleanup(http.close)
        return http

    async def test_denied_posts_are_refused_before_connecting(self) -> None:
        """http and https (own pool) and URLs only the agent takes (non-ASCII)
        all refuse a denied address, by address or by name."""
        base = await self.start_sink()
        http = self.client(deny=["127.0.0.0/8", "::1/128"])
        for url in (
            base + "/mo",
            base + "/m\u00f6",
            "https://127.0.0.1:1/mo",
            "http://localhost:1/",
        ):
            result = await http.post_json(url, {"a": 1})
            self.assertFalse(result.ok, url)
            self.assertTrue(result.refused, url)
            self.assertIn("denied callback network", result.error or "", url)
        pending: Deferred[Any] = self.sink.queue.get()
        self.assertFalse(pending.called)
        pending.cancel()
        pending.addErrback(lambda _: None)

    async def test_gets_are_not_callbacks(self) -> None:
        """GETs (/health asking the operator's RabbitMQ management API) are
        not checked against the callback networks."""
        base = await self.start_sink()
        http = self.client(deny=["127.0.0.0/8"])
        code, value = await http.get_json(base + "/api/overview")
        self.assertEqual((code, value), (200, {}))

    async def test_allowed_posts_go_through(self) -> None:
        base = await self.start_sink()
        http = self.client(allow=["127.0.0.0/8"])
        result = await http.post_json(base + "/mo", {"a": 1})
        self.assertTrue(result.ok, result)
        self.assertEqual((await self.sink.next()).body, {"a": 1})

    async def test_non_http_urls_are_refused(self) -> None:
        """Even without lists, a stored file:// or gopher:// URL is never
        tried, and never retried."""
        http = HttpClient(reactor)
        self.addCleanup(http.close)
        for url in ("file:///etc/passwd", "gopher://127.0.0.1:6379/_x"):
            result = await http.post_json(url, {})
            self.assertTrue(result.refused, url)
