"""Send users: config checks, secrecy, credentials; sending from a router
destination through a dialect."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from junebug.config import JunebugConfig, as_dict, build_config
from junebug.dialects.accounts import SendAccounts, SendUser, send_users
from junebug.dialects.routes import _submit
from junebug.errors import ConfigError
from junebug.redaction import redact_config
from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import wait_until


class SendUserConfigTests(SynchronousTestCase):
    def test_each_user_sends_through_one_thing(self) -> None:
        for entry in [
            {"username": "u", "password": "p"},
            {"username": "u", "password": "p", "channel_id": "c", "router_id": "r"},
            {"username": "u", "password": "p", "router_id": "r"},
            {"username": "u", "password": "p", "channel_id": "c", "dialects": ["x"]},
            {"username": "u", "password": "p", "channel_id": "c", "typo": 1},
        ]:
            with self.assertRaises(ConfigError, msg=entry):
                build_config({"send_users": [entry]})

    def test_duplicate_usernames(self) -> None:
        user = {"username": "u", "password": "p", "channel_id": "c"}
        with self.assertRaises(ConfigError):
            build_config({"send_users": [user, user]})

    def test_password_is_secret(self) -> None:
        [user] = send_users(
            [{"username": "u", "password": "hunter2", "channel_id": "c"}]
        )
        self.assertNotIn("hunter2", repr(user))
        config = build_config(
            {
                "send_users": [
                    {"username": "u", "password": "hunter2", "channel_id": "c"}
                ]
            }
        )
        self.assertNotIn("hunter2", repr(redact_config(as_dict(config), JunebugConfig)))

    def test_authenticate(self) -> None:
        accounts = SendAccounts(
            [SendUser("u", "p", channel_id="c", dialects=["kannel"])]
        )
        self.assertIsNotNone(accounts.authenticate(b"u", b"p", "kannel"))
        self.assertIsNone(accounts.authenticate(b"u", b"p", "jasmin"))
        self.assertIsNone(accounts.authenticate(b"u", b"x", "kannel"))
        self.assertIsNone(accounts.authenticate(b"v", b"p", "kannel"))
        self.assertIsNone(accounts.authenticate(b"u", None, "kannel"))
        self.assertIsNone(accounts.authenticate(None, None, "kannel"))


class RouterDestinationTests(TestCase):
    async def test_kannel_send_from_a_destination(self) -> None:
        """A user on a router destination: the message goes out on the
        router's channel, its DLR at dlr-url comes through the destination."""
        sink = HttpSink(reactor)
        base = await sink.start()
        self.addCleanup(sink.stop)
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start()
        _, channel, _ = await api.request(
            "POST", "/channels/", {"type": "fake", "config": {}}
        )
        cid = channel["result"]["id"]
        _, router, _ = await api.request(
            "POST", "/routers/", {"type": "from_address", "config": {"channel": cid}}
        )
        rid = router["result"]["id"]
        _, dest, _ = await api.request(
            "POST",
            f"/routers/{rid}/destinations/",
            {"config": {"default": True}, "mo_url": base + "/mo"},
        )
        did = dest["result"]["id"]
        assert api.junebug is not None
        user = SendUser("u", "p", router_id=rid, destination_id=did)
        view = await _submit(
            api.junebug.api.deps,
            user,
            {"to": "1", "content": "from a destination"},
            {"dialect": "kannel", "dlr_url": base + "/dlr?s=%d&id=%I", "dlr_mask": 8},
        )
        transport = api.transport(cid)
        await wait_until(lambda: transport.outbound)
        [sent] = transport.outbound
        self.assertEqual(sent["message_id"], view["message_id"])
        got = await sink.next()
        self.assertEqual(got.path, "/dlr")
        query = parse_qs(urlsplit(got.uri).query)
        self.assertEqual((query["s"], query["id"]), (["8"], [view["message_id"]]))
