"""How the Redis backend reaches production servers: big replies, ACL users,
TLS, unix sockets, IPv6; and the URL forms that name them."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv6Address
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IReactorPluggableNameResolver,
    IResolutionReceiver,
)
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from junebug.config import build_config
from junebug.errors import ConfigError, StoreUnavailable
from junebug.stores.redis import connect_redis
from junebug.stores.redis_address import RedisAddress, address_of
from junebug.testing.certificates import CertificateFiles, make_certificates
from junebug.testing.redis import start_redis_fixture
from junebug.tests.support.redis_server import RedisServer


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class _SixOnlyResolver:
    """Knows one name, ``redis-v6.test``, with only the address ``::1``."""

    def resolveHostName(
        self,
        receiver: IResolutionReceiver,
        hostName: str,  # noqa: N803 (the interface names them)
        portNumber: int = 0,  # noqa: N803
        addressTypes: Any = None,  # noqa: N803
        transportSemantics: str = "TCP",  # noqa: N803
    ) -> IHostResolution:
        resolution = _Resolution(hostName)
        receiver.resolutionBegan(resolution)
        if hostName == "redis-v6.test":
            receiver.addressResolved(IPv6Address("TCP", "::1", portNumber))
        receiver.resolutionComplete()
        return resolution


@implementer(IReactorPluggableNameResolver)
class _ReactorWithResolver:
    """The real reactor, but names resolve with :class:`_SixOnlyResolver`."""

    def __init__(self) -> None:
        self.nameResolver = _SixOnlyResolver()

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


class RedisUrlTests(SynchronousTestCase):
    def test_plain(self) -> None:
        self.assertEqual(
            RedisAddress.from_url("redis://redis.internal:6380/2"),
            RedisAddress(host="redis.internal", port=6380, db=2),
        )
        self.assertEqual(RedisAddress.from_url("redis://h"), RedisAddress(host="h"))

    def test_credentials_are_percent_decoded(self) -> None:
        address = RedisAddress.from_url("redis://jb%40x:p%2Fw%3A@h/1")
        self.assertEqual((address.username, address.password), ("jb@x", "p/w:"))
        address = RedisAddress.from_url("redis://:secret@h")
        self.assertEqual((address.username, address.password), (None, "secret"))

    def test_tls(self) -> None:
        address = RedisAddress.from_url("rediss://h:6390", ca_file="/ca.pem")
        self.assertEqual(
            (address.tls, address.ca_file, address.port), (True, "/ca.pem", 6390)
        )
        self.assertEqual(address.describe(), "rediss://h:6390")

    def test_ipv6(self) -> None:
        address = RedisAddress.from_url("redis://[::1]:7000/3")
        self.assertEqual((address.host, address.port, address.db), ("::1", 7000, 3))
        self.assertEqual(address.describe(), "[::1]:7000")

    def test_unix(self) -> None:
        address = RedisAddress.from_url("unix://:pw@/run/redis/redis.sock?db=4")
        self.assertEqual(
            (address.unix_socket, address.db, address.password),
            ("/run/redis/redis.sock", 4, "pw"),
        )
        self.assertEqual(address.describe(), "unix:/run/redis/redis.sock")

    def test_bad_urls_say_why_without_the_password(self) -> None:
        for url, why in [
            ("http://h", "redis://, rediss:// or unix://"),
            ("redis://:secret@h/x", "database must be a number"),
            ("redis://:secret@h:99999", "not a Redis URL"),
            ("redis:///0", "needs a host"),
            ("unix://", "socket path"),
        ]:
            with self.assertRaises(ValueError) as caught:
                RedisAddress.from_url(url)
            self.assertIn(why, str(caught.exception))
            self.assertNotIn("secret", str(caught.exception))

    def test_config_refuses_a_bad_url_or_ca_file(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            build_config({"redis": {"url": "redis://:secret@h/x"}})
        self.assertIn("database must be a number", str(caught.exception))
        self.assertNotIn("secret", str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            build_config({"redis": {"ca_file": "/nonexistent/ca.pem"}})
        self.assertIn("/nonexistent/ca.pem", str(caught.exception))

    def test_config_url_replaces_the_fields(self) -> None:
        config = build_config(
            {"redis": {"host": "a", "url": "rediss://u:p@b:7/2", "ca_file": None}}
        )
        self.assertEqual(
            address_of(config.redis),
            RedisAddress(host="b", port=7, db=2, username="u", password="p", tls=True),
        )
        config = build_config({"redis": {"host": "a", "username": "u", "tls": True}})
        self.assertEqual(
            address_of(config.redis), RedisAddress(host="a", username="u", tls=True)
        )

    def test_password_not_in_repr(self) -> None:
        self.assertNotIn("secret", repr(RedisAddress.from_url("redis://:secret@h")))


class SharedRedisTests(TestCase):
    """Against the machine's Redis, under the test's key prefix."""

    async def setUp(self) -> None:
        self.redis = await start_redis_fixture(self, reactor)

    async def test_smembers_of_200000(self) -> None:
        """Failed at the 10 s reply timeout with the pure-Python parser."""
        backend = await self.redis.backend()
        members = [f"m{n:07d}" for n in range(200_000)]
        for start in range(0, len(members), 20_000):
            await backend.sadd("big", *members[start : start + 20_000])
        self.assertEqual(await backend.smembers("big"), set(members))

    async def test_get_of_4_mib(self) -> None:
        backend = await self.redis.backend()
        value = "é" * (2 * 1024 * 1024)  # 4 MiB of UTF-8
        await backend.set("big", value)
        self.assertEqual(await backend.get("big"), value)

    async def _acl_user(self) -> tuple[str, str]:
        """A throw-away ACL user allowed only the test's keys."""
        user = f"junebug-test-{uuid.uuid4().hex}"
        password = uuid.uuid4().hex
        await self.redis.raw(
            "ACL", "SETUSER", user, "on", f">{password}",
            f"~{self.redis.prefix}:*", "+@all",
        )  # fmt: skip
        self.addCleanup(self.redis.raw, "ACL", "DELUSER", user)
        return user, password

    async def test_acl_user(self) -> None:
        user, password = await self._acl_user()
        address = self.redis.address
        backend = await connect_redis(
            address.host,
            address.port,
            address.db,
            password,
            self.redis.prefix,
            username=user,
            clock=reactor,
            connect_timeout=5,
        )
        self.addCleanup(backend.close)
        await backend.set("k", "v")
        self.assertEqual(await backend.get("k"), "v")
        self.assertEqual(await self.redis.raw("GET", f"{self.redis.prefix}:k"), "v")
        # the user may touch nothing else
        outside = await connect_redis(
            address.host, address.port, address.db, password, "elsewhere",
            username=user, clock=reactor, connect_timeout=5,
        )  # fmt: skip
        self.addCleanup(outside.close)
        with self.assertRaises(Exception) as caught:
            await outside.get("k")
        self.assertIn("NOPERM", str(caught.exception))

    async def test_acl_user_from_a_url(self) -> None:
        user, password = await self._acl_user()
        address = self.redis.address
        url = f"redis://{user}:{password}@{address.host}:{address.port}/{address.db}"
        backend = await connect_redis(
            key_prefix=self.redis.prefix,
            address=RedisAddress.from_url(url),
            clock=reactor,
            connect_timeout=5,
        )
        self.addCleanup(backend.close)
        self.assertIs(await backend.ping(), True)

    async def test_acl_user_wrong_password(self) -> None:
        user, _ = await self._acl_user()
        address = self.redis.address
        with self.assertRaises(StoreUnavailable) as caught:
            await connect_redis(
                address.host, address.port, password="wrong", username=user,
                clock=reactor, connect_timeout=5,
            )  # fmt: skip
        self.assertIn("authentication failed", str(caught.exception))

    async def test_host_name(self) -> None:
        """``localhost`` is resolved (to IPv4 or IPv6, whichever answers)."""
        address = self.redis.address
        backend = await connect_redis(
            "localhost", address.port, address.db, address.password,
            clock=reactor, connect_timeout=5,
        )  # fmt: skip
        self.addCleanup(backend.close)
        self.assertIs(await backend.ping(), True)


class PrivateRedisTests(TestCase):
    """A private redis-server listening where the shared one does not."""

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="jb-redis-test-")
        self.addCleanup(shutil.rmtree, self.directory, True)

    async def _server(self, **kwargs: object) -> RedisServer:
        server = RedisServer(reactor, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(shutil.rmtree, server.directory, True)
        self.addCleanup(server.stop)
        await server.start()
        return server

    def _certificates(self) -> CertificateFiles:
        return make_certificates(self.directory)

    async def test_tls_with_the_ca(self) -> None:
        certificates = self._certificates()
        server = await self._server(tls=certificates)
        for host in ("localhost", "127.0.0.1"):
            backend = await connect_redis(
                address=RedisAddress.from_url(
                    f"rediss://{host}:{server.port}/0", ca_file=certificates.ca_file
                ),
                clock=reactor,
                connect_timeout=5,
            )
            self.addCleanup(backend.close)
            await backend.set("k", host)
            self.assertEqual(await backend.get("k"), host)

    async def test_tls_without_the_ca_is_refused(self) -> None:
        """The platform's CAs do not know the test CA: verification fails."""
        server = await self._server(tls=self._certificates())
        with self.assertRaises(StoreUnavailable) as caught:
            await connect_redis(
                address=RedisAddress.from_url(f"rediss://localhost:{server.port}"),
                clock=reactor,
                connect_timeout=5,
            )
        self.assertIn("certificate verify failed", str(caught.exception))

    async def test_tls_bad_ca_file(self) -> None:
        with self.assertRaises(StoreUnavailable) as caught:
            await connect_redis(
                address=RedisAddress.from_url(
                    "rediss://localhost:1", ca_file=f"{self.directory}/none.pem"
                ),
                clock=reactor,
            )
        self.assertIn("none.pem", str(caught.exception))

    async def test_unix_socket(self) -> None:
        server = await self._server(unix_socket=True)
        backend = await connect_redis(
            address=RedisAddress.from_url(f"unix://{server.socket_path}?db=1"),
            clock=reactor,
            connect_timeout=5,
        )
        self.addCleanup(backend.close)
        await backend.set("k", "v")
        self.assertEqual(await backend.get("k"), "v")

    async def test_ipv6(self) -> None:
        server = await self._server(bind="::1")
        backend = await connect_redis(
            address=RedisAddress.from_url(f"redis://[::1]:{server.port}"),
            clock=reactor,
            connect_timeout=5,
        )
        self.addCleanup(backend.close)
        await backend.set("k", "v")
        self.assertEqual(await backend.get("k"), "v")

    async def test_host_name_with_only_an_ipv6_address(self) -> None:
        """A name that resolves to IPv6 only (TCP4ClientEndpoint, used
        before, resolved names to IPv4 only and failed)."""
        server = await self._server(bind="::1")
        backend = await connect_redis(
            "redis-v6.test",
            server.port,
            clock=reactor,
            reactor=_ReactorWithResolver(),
            connect_timeout=5,
        )
        self.addCleanup(backend.close)
        await backend.set("k", "v")
        self.assertEqual(await backend.get("k"), "v")
