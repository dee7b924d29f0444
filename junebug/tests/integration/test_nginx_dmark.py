"""A dmark channel exposed through a real nginx by the nginx plugin.

A private nginx (Debian's package, installed if missing) runs with the
plugin's vhost.  A dmark channel is created over the API; a USSD request sent
through nginx reaches ``mo_url``, and the reply posted to the API comes back
on the same HTTP request.  Deleting the channel removes its location file and
reloads nginx, after which nginx no longer routes the path.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import pytest
from treq.client import HTTPClient
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink
from junebug.tests.support.nginx import NginxServer, start_nginx
from junebug.tests.support.process import free_port

WEB_PATH = "/dmark/ussd"


async def poll(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Await ``check()`` every 0.1 s until it is true; False after ``timeout``."""
    waited = 0.0
    while waited < timeout:
        if await check():
            return True
        await task.deferLater(reactor, 0.1, lambda: None)
        waited += 0.1
    return False


def ussd_query(**overrides: str) -> str:
    values = {
        "transactionId": "tx-1",
        "msisdn": "+256772000001",
        "ussdServiceCode": "*123#",
        "ussdRequestString": "*123#",
        "transactionTime": "1389971940",
        "creationTime": "1389971950",
        "response": "false",
        **overrides,
    }
    return urlencode(values)


@pytest.mark.timeout(900)
class NginxDmarkTests(TestCase):
    timeout = 900  # the first run may install nginx

    async def get(self, url: str) -> tuple[int, bytes]:
        response = await self.http.get(url)
        return response.code, await response.content()

    async def wait_for_code(self, url: str, code: int, timeout: float = 15.0) -> None:
        """Poll ``url`` until it answers ``code`` five times in a row: nginx
        reloads asynchronously, and until the old worker has gone a new
        connection may still reach it and get the old answer."""
        seen: list[int] = []

        async def answers() -> bool:
            got, _ = await self.get(url)
            seen.append(got)
            return len(seen) >= 5 and seen[-5:] == [code] * 5

        if not await poll(answers, timeout):
            self.fail(f"{url} never answered {code}; saw {seen[-5:]}")

    async def test_dmark_through_nginx(self) -> None:
        nginx: NginxServer = await start_nginx(self, reactor)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        sink = HttpSink(reactor)
        sink_base = await sink.start()
        self.addCleanup(sink.stop)

        vhost = nginx.sites_dir / "junebug.conf"
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start(
            plugins=[
                {
                    "type": "junebug.plugins.nginx.NginxPlugin",
                    "server_name": "localhost",
                    "vhost_file": str(vhost),
                    "locations_dir": f"{nginx.locations_dir}/",
                    "listen": f"127.0.0.1:{nginx.port}",
                    "reload_command": nginx.reload_command,
                }
            ]
        )
        self.assertIn(f"listen 127.0.0.1:{nginx.port};", vhost.read_text())
        self.assertTrue(
            await poll(lambda: nginx.accepts(nginx.port), 15), "vhost not listening"
        )
        public = f"http://127.0.0.1:{nginx.port}{WEB_PATH}"
        # Nothing is routed yet: nginx itself answers 404.
        code, _ = await self.get(f"{public}?{ussd_query()}")
        self.assertEqual(code, 404)

        web_port = free_port()
        code, body, _ = await api.request(
            "POST",
            "/channels/",
            {
                "type": "dmark",
                "label": "USSD",
                "mo_url": sink_base + "/mo",
                "config": {"web_path": WEB_PATH, "web_port": web_port},
            },
        )
        self.assertEqual(code, 201, body)
        cid = body["result"]["id"]
        location = nginx.locations_dir / f"{cid}.conf"
        text = location.read_text()
        self.assertIn(f"location {WEB_PATH} {{", text)
        self.assertIn(f"proxy_pass http://localhost:{web_port}{WEB_PATH};", text)

        # Once reloaded, nginx routes the path: the channel rejects a request
        # without parameters itself (400), no MO is made.
        await self.wait_for_code(public, 400)

        # A new session, through nginx, held open until the API reply.
        pending = Deferred.fromCoroutine(self.get(f"{public}?{ussd_query()}"))
        mo = await sink.next()
        self.assertEqual(mo.path, "/mo")
        self.assertEqual(mo.body["channel_id"], cid)
        self.assertEqual(mo.body["from"], "+256772000001")
        self.assertEqual(mo.body["to"], "*123#")
        self.assertIsNone(mo.body["content"])
        self.assertEqual(
            mo.body["channel_data"], {"session_event": "new", "session_id": "tx-1"}
        )
        self.assertFalse(pending.called)
        code, body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {"reply_to": mo.body["message_id"], "content": "1. Balance\n2. Quit"},
        )
        self.assertEqual(code, 201, body)
        code, answer = await pending
        self.assertEqual(code, 200)
        self.assertEqual(
            json.loads(answer),
            {"responseString": "1. Balance\n2. Quit", "action": "request"},
        )

        # The user answers; the reply ends the session (continue_session false).
        pending = Deferred.fromCoroutine(
            self.get(f"{public}?{ussd_query(ussdRequestString='2', response='true')}")
        )
        mo = await sink.next()
        self.assertEqual(mo.body["content"], "2")
        self.assertEqual(mo.body["channel_data"]["session_event"], "resume")
        code, body, _ = await api.request(
            "POST",
            f"/channels/{cid}/messages/",
            {
                "reply_to": mo.body["message_id"],
                "content": "Goodbye",
                "channel_data": {"continue_session": False},
            },
        )
        self.assertEqual(code, 201, body)
        code, answer = await pending
        self.assertEqual(
            (code, json.loads(answer)),
            (200, {"responseString": "Goodbye", "action": "end"}),
        )

        # Deleting the channel removes its location and reloads nginx.
        code, body, _ = await api.request("DELETE", f"/channels/{cid}")
        self.assertEqual(code, 200, body)
        self.assertFalse(location.exists())
        await self.wait_for_code(public, 404)
        self.assertNotIn("[emerg]", nginx.output)

        # Stopping Junebug stops the plugin: the vhost goes too.
        await api.stop()
        self.assertFalse(vhost.exists())
