"""The dashboard lights up the parts of the API that other features add.

A stand-in API (a Klein app serving the real dashboard files and canned
answers in the envelope) gives what a Junebug with the cluster and traffic
control features answers: a channel's owner process, its queue per
priority and whether it is paused, ``POST .../pause`` and ``/resume``,
``GET /processes/`` and a message's logs.  Headless Chromium checks that the
page shows each of them, as text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from klein import Klein
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.iweb import IRequest
from twisted.web.server import Site

from junebug.api import dashboard
from junebug.api.envelope import render
from junebug.tests.support.browser import Browser

OUTPUT = Path(__file__).resolve().parents[3] / "test-output" / "dashboard"
CHANNEL = "sms-1"
MESSAGE = "m-1"


class StandInApi:
    """Canned answers in the shape the coming features give."""

    def __init__(self) -> None:
        self.paused = False
        self.calls: list[str] = []
        self.app = Klein()
        dashboard.install(self.app)
        self.app.route("/channels/", methods=["GET"])(self.list_channels)
        self.app.route("/channels/<string:cid>", methods=["GET"])(self.get_channel)
        self.app.route("/channels/<string:cid>/logs", methods=["GET"])(self.logs)
        self.app.route("/channels/<string:cid>/pause", methods=["POST"])(self.pause)
        self.app.route("/channels/<string:cid>/resume", methods=["POST"])(self.resume)
        self.app.route("/channels/<string:cid>/messages/<string:mid>", methods=["GET"])(
            self.message
        )
        self.app.route(
            "/channels/<string:cid>/messages/<string:mid>/logs", methods=["GET"]
        )(self.message_logs)
        self.app.route("/processes/", methods=["GET"])(self.processes)

    def channel(self) -> dict[str, Any]:
        return {
            "id": CHANNEL,
            "type": "smpp",
            "label": "Bulk <SMS>",
            "config": {"system_id": "smppclient1", "password": "***"},
            "status": {
                "status": "ok",
                "paused": self.paused,
                "owner": {"id": "proc-b", "host": "node-2"},
                "queue": {
                    "5": {"waiting": 3},
                    "1": {"waiting": 200, "drain_seconds": 40},
                },
                "components": {
                    "smpp": {
                        "status": "ok",
                        "type": "bound",
                        "message": "Bound as <transceiver>",
                        "details": {"window": 10},
                    }
                },
                "inbound_message_rate": 0.5,
                "outbound_message_rate": 12.25,
                "submitted_event_rate": 12.0,
            },
        }

    def list_channels(self, request: IRequest) -> bytes:
        return render(request, 200, "channels listed", [CHANNEL])

    def get_channel(self, request: IRequest, cid: str) -> bytes:
        return render(request, 200, "channel found", self.channel())

    def logs(self, request: IRequest, cid: str) -> bytes:
        return render(request, 200, "logs retrieved", [])

    def pause(self, request: IRequest, cid: str) -> bytes:
        self.paused = True
        self.calls.append("pause")
        return render(request, 200, "channel paused", {})

    def resume(self, request: IRequest, cid: str) -> bytes:
        self.paused = False
        self.calls.append("resume")
        return render(request, 200, "channel resumed", {})

    def message(self, request: IRequest, cid: str, mid: str) -> bytes:
        events = [{"event_type": "delivery_succeeded", "timestamp": "t1"}]
        result = {
            "id": mid,
            "last_event_type": "delivery_succeeded",
            "last_event_timestamp": "t1",
            "events": events,
        }
        return render(request, 200, "message status", result)

    def message_logs(self, request: IRequest, cid: str, mid: str) -> bytes:
        entries = [
            {"timestamp": 1.5, "level": 20, "message": "submit_sm <seq 7>"},
            {"timestamp": 2.5, "level": 20, "message": "submit_sm_resp ESME_ROK"},
        ]
        return render(request, 200, "logs retrieved", entries)

    def processes(self, request: IRequest) -> bytes:
        found = [
            {"id": "proc-a", "host": "node-1", "pid": 11, "channels": 0},
            {"id": "proc-b", "host": "node-2", "pid": 12, "channels": 1},
        ]
        return render(request, 200, "processes listed", found)


@pytest.mark.timeout(900)
class FutureFieldsTests(TestCase):
    #: The first run may install chromium and chromium-driver (minutes);
    #: after that each wait on the page is bounded by its own few seconds.
    timeout = 900

    async def test_owner_queue_pause_processes_message_logs(self) -> None:
        stand_in = StandInApi()
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = await endpoint.listen(Site(stand_in.app.resource()))
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]
        browser = await Browser.start(reactor)
        self.addCleanup(browser.quit)

        await browser.get(base + "/dashboard/")
        row = f'#channels-table tr[data-channel-id="{CHANNEL}"]'
        await browser.text_becomes(f"{row} .label", "Bulk <SMS>".__eq__, "the label")
        cells = {
            name: await browser.text_becomes(f"{row} .{name}", bool, name)
            for name in ("status", "paused", "outbound", "queue", "owner")
        }
        self.assertEqual(
            cells,
            {
                "status": "ok",
                "paused": "running",
                "outbound": "12.25",
                "queue": "1: (waiting: 200, drain_seconds: 40), 5: (waiting: 3)",
                "owner": "proc-b",
            },
        )
        await browser.screenshot(OUTPUT / "10-future-channels.png")

        await browser.click(f"{row} .label a")
        await browser.text_becomes("#channel-owner", "proc-b".__eq__, "the owner")
        await browser.text_becomes(
            "#components", lambda t: "Bound as <transceiver>" in t, "the component"
        )
        config = await browser.text_becomes("#channel-config", bool, "the config")
        self.assertEqual(json.loads(config)["password"], "***")
        await browser.click("#pause")
        await browser.text_becomes("#banner", lambda t: "channel paused" in t, "info")
        await browser.text_becomes("#channel-paused", "paused".__eq__, "paused")
        await browser.click("#resume")
        await browser.text_becomes("#channel-paused", "running".__eq__, "resumed")
        self.assertEqual(stand_in.calls, ["pause", "resume"])

        await browser.fill("#trace-form input[name=message_id]", MESSAGE)
        await browser.click("#trace-button")
        await browser.text_becomes(
            "#trace-last-event", "delivery_succeeded".__eq__, "the last event"
        )
        logs = await browser.text_becomes(
            "#trace-logs", lambda t: "submit_sm_resp" in t, "the message's logs"
        )
        self.assertIn("submit_sm <seq 7>", logs)
        self.assertIn("info", logs)
        await browser.screenshot(OUTPUT / "11-future-channel.png")

        await browser.click("#nav-processes")
        table = await browser.text_becomes(
            "#processes-table", lambda t: "proc-b" in t, "the processes"
        )
        self.assertIn("node-1", table)
        await browser.screenshot(OUTPUT / "12-future-processes.png")
        self.assertEqual(await browser.page_errors(), [])
