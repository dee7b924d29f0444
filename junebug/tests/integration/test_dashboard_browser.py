"""The dashboard end to end in a real headless Chromium (Selenium and Debian's
chromium, installed by the test if missing).

A Junebug with the dashboard on, real Redis and RabbitMQ, Basic auth: through
the page an operator creates a telnet channel (first with a value the API's
schema refuses, whose error the page shows), sees it listed, sends a test
message that a real telnet client receives, sees the outbound rate move and
the message's trace, pauses and resumes it, replays a dead letter, edits and
deletes it.  The channel's label is an XSS attempt, which must show as text.
A screenshot of each page lands in ``test-output/dashboard/`` (gitignored).

The page must show the channel paused, then sending again, the message's
logs in its trace, and the live processes.  (How the page copes with an
older Junebug that lacks those routes is
``test_dashboard_future_fields.py``'s.)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from junebug.channels.registry import ChannelRegistry
from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink
from junebug.testing.rabbitmq import rabbitmq_test_settings
from junebug.testing.redis import start_redis_fixture
from junebug.testing.telnet_client import connect_line_client
from junebug.tests.support.browser import Browser
from junebug.tests.support.process import free_port

ROOT = Path(__file__).resolve().parents[3]
OUTPUT = ROOT / "test-output" / "dashboard"
USER, PASSWORD = "ops", "s3cret"
#: Seconds per rate bucket: longer than the page's 2 s poll, so a poll
#: always lands while the message is counted in the rate.
WINDOW = 3.0
XSS_LABEL = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.mark.timeout(900)
class DashboardInBrowserTests(TestCase):
    #: The first run may install chromium and chromium-driver (minutes);
    #: after that each wait on the page is bounded by its own few seconds.
    timeout = 900

    async def start_junebug(self, mo_url: str) -> ApiDriver:
        redis = await start_redis_fixture(self, reactor)
        settings = rabbitmq_test_settings()
        api = ApiDriver(reactor)
        self.addCleanup(api.stop)
        await api.start(
            embedded=False,
            dashboard=True,
            api_username=USER,
            api_password=PASSWORD,
            metric_window=WINDOW,
            # A refused MO post goes straight to the dead letters.
            http_retry_max_age=60.0,
            redis={
                "host": redis.address.host,
                "port": redis.address.port,
                "db": redis.address.db,
                "password": redis.address.password,
                "key_prefix": redis.prefix,
            },
            amqp={
                "hostname": settings.host,
                "port": settings.port,
                "vhost": settings.vhost,
                "username": settings.username,
                "password": settings.password,
            },
            logging_path=tempfile.mkdtemp(prefix="junebug-logs-"),
        )
        self.mo_url = mo_url
        return api

    def registry(self, api: ApiDriver) -> ChannelRegistry:
        assert api.junebug is not None
        return api.junebug.channels

    async def shot(self, browser: Browser, name: str) -> None:
        path = OUTPUT / f"{name}.png"
        await browser.screenshot(path)
        self.assertGreater(path.stat().st_size, 1000, path)

    async def banner(self, browser: Browser, kind: str, *words: str) -> str:
        """The banner's text once it is of ``kind`` and says every one of ``words``."""

        def says(driver: Any) -> str | None:
            node = driver.find_element("id", "banner")
            if node.get_attribute("class") != kind or not node.is_displayed():
                return None
            text = str(node.text)
            return text if all(word in text for word in words) else None

        found: str = await browser.wait_for(says, f"a {kind} banner saying {words}")
        return found

    async def test_operator_walkthrough(self) -> None:
        sink = HttpSink(reactor)
        sink.response_code = 400  # MO posts are refused: dead letters
        sink_base = await sink.start()
        self.addCleanup(sink.stop)
        api = await self.start_junebug(sink_base + "/mo")
        port = api.base.rsplit(":", 1)[1]
        browser = await Browser.start(reactor)
        self.addCleanup(browser.quit)

        # The page, with the credentials a browser would ask the user for.
        await browser.get(f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/dashboard/")
        await browser.text_becomes(
            "#channels-table tbody", lambda t: "No channels yet" in t, "empty list"
        )
        await self.shot(browser, "01-channels-empty")

        # Create a telnet channel from the form; first with a value the
        # API's schema refuses: its envelope shows in the banner.
        telnet_port = free_port()
        await browser.click("#nav-new")
        await browser.fill("#f-type", "telnet")
        await browser.fill("#f-label", XSS_LABEL)
        await browser.fill("#f-mo_url", self.mo_url)
        await browser.fill("#f-rate_limit_count", "-1")
        await browser.fill(
            "#f-config",
            json.dumps({"twisted_endpoint": f"tcp:{telnet_port}:interface=127.0.0.1"}),
        )
        await browser.click("#save")
        refused = await self.banner(browser, "error", "Creating the channel failed")
        self.assertIn("400 Bad Request: api usage error", refused)
        self.assertIn("-1 is less than the minimum of 0", refused)
        await self.shot(browser, "02-form-refused")
        self.assertEqual(await self.registry(api).store.list_ids(), [])
        await browser.fill("#f-rate_limit_count", "")
        await browser.click("#save")

        # The channel's page: the label is text, not markup.
        await self.banner(browser, "info", "Channel created")
        title = await browser.text_becomes(
            "main h1", lambda t: XSS_LABEL in t, "the label as the title"
        )
        self.assertIn(XSS_LABEL, title)
        self.assertIsNone(await browser.run("return window.__xss"))
        self.assertEqual(
            await browser.run(
                "return document.querySelectorAll('main img, main script').length"
            ),
            0,
        )
        channel_id = await browser.run(
            "return decodeURIComponent(location.hash.split('/')[2])"
        )
        self.assertEqual(self.registry(api).running_ids(), [channel_id])
        await browser.text_becomes(
            "#channel-type", lambda t: t == "telnet", "the channel's type"
        )

        # It comes up: listed, and its telnet port takes a client (whose new
        # session is an MO post the sink refuses: a dead letter).
        await browser.click("#nav-channels")
        row = f'#channels-table tr[data-channel-id="{channel_id}"]'
        listed_label = await browser.text_becomes(
            f"{row} .label", lambda t: XSS_LABEL in t, "the channel in the list"
        )
        self.assertEqual(listed_label, XSS_LABEL)
        # Its status level is what the API says ("—" when no component has
        # reported one, as a telnet channel never does).
        registry = self.registry(api)
        view = await registry.status_view(
            channel_id, await registry.get_properties(channel_id)
        )
        level = view["status"]["status"] or "\u2014"
        await browser.text_becomes(f"{row} .status", level.__eq__, "the status level")
        client = await connect_line_client(reactor, telnet_port)
        self.addCleanup(client.close)
        await sink.next()
        await self.shot(browser, "03-channels")

        # Send a test message from the channel's page: the telnet client
        # gets it, the trace shows its events, the outbound rate moves.
        await browser.click(f"{row} .label a")
        await browser.fill("#send-form input[name=to]", client.address)
        await browser.fill(
            "#send-form input[name=content]", "hello <b>from</b> the dashboard"
        )
        await browser.click("#send")
        self.assertEqual(
            await client.next_line(reactor), "hello <b>from</b> the dashboard"
        )
        sent = await browser.text_becomes(
            "#send-result", lambda t: t.startswith("Sent: message "), "the message id"
        )
        message_id = sent.removeprefix("Sent: message ")
        await browser.text_becomes(
            "#trace-id", lambda t: t == message_id, "the traced message"
        )
        await browser.text_becomes(
            "#trace-last-event", lambda t: t == "submitted", "the submitted event"
        )
        await browser.text_becomes(
            "#trace-events .event-type", lambda t: t == "submitted", "the event row"
        )
        rate = await browser.text_becomes(
            "#rate-outbound_message_rate",
            lambda t: t not in ("", "0", "\u2014"),
            "the outbound rate to move",
            timeout=3 * WINDOW + 5,
        )
        self.assertAlmostEqual(float(rate), 1 / WINDOW, places=2)
        await browser.element("#trace-logs")
        await self.shot(browser, "04-channel-trace")

        # Pause and resume.
        for action, state in (("pause", "paused"), ("resume", "running")):
            await browser.click(f"#{action}")
            await self.banner(browser, "info")
            await browser.text_becomes(
                "#channel-paused", state.__eq__, f"the channel {state}"
            )
            await self.shot(browser, f"05-{action}")

        # The refused MO post is a dead letter; replay it.
        await browser.click("#nav-dead-letters")
        await browser.text_becomes(
            "#dead-letters-table tbody",
            lambda t: sink_base + "/mo" in t,
            "the dead letter",
        )
        await self.shot(browser, "06-dead-letters")
        await browser.click("#replay")
        # (At least 1: a letter refused again while the replay runs may be
        # replayed again by it.)
        replayed_text = await self.banner(browser, "info", "Replayed ")
        self.assertRegex(replayed_text, r"Replayed [1-9]\d* dead letters")
        replayed = await sink.next()
        self.assertEqual(replayed.path, "/mo")

        # Processes: listed when this Junebug has the route.
        await browser.click("#nav-processes")
        await browser.element("#processes-table")
        await self.shot(browser, "07-processes")

        # Modify the channel from the form, prefilled with what it is.
        await browser.get(
            f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/dashboard/#/channels/{channel_id}/edit"
        )
        await browser.wait_for(
            lambda d: (
                d.find_element("id", "f-label").get_attribute("value") == XSS_LABEL
            ),
            "the form prefilled",
        )
        await browser.fill("#f-label", "Renamed")
        await self.shot(browser, "08-edit")
        await browser.click("#save")
        await self.banner(browser, "info", "Channel updated")
        await browser.text_becomes(
            "main h1", lambda t: t.startswith("Renamed"), "renamed"
        )
        properties = await self.registry(api).get_properties(channel_id)
        self.assertEqual(properties["label"], "Renamed")

        # Delete it (two clicks): back to an empty list.
        await browser.click("#delete")
        await browser.click("#delete-confirm")
        await self.banner(browser, "info", "channel deleted")
        await browser.text_becomes(
            "#channels-table tbody",
            lambda t: "No channels yet" in t,
            "empty list again",
        )
        self.assertEqual(self.registry(api).running_ids(), [])
        await self.shot(browser, "09-deleted")
        self.assertEqual(await browser.page_errors(), [])
